// Calls to the gateway's own API: the API key, readable errors, and OpenAI streams.

const KEY = "bitgate.key";
const MAX_KEY_TRIES = 3;

/** An error the page can show as it is: the gateway's message and what it means. */
export class ApiError extends Error {
  constructor(message, status = 0, code = null) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function storedKey() {
  try {
    return localStorage.getItem(KEY) || "";
  } catch {
    return "";
  }
}

function storeKey(key) {
  try {
    localStorage.setItem(KEY, key);
  } catch {
    // Private mode or storage full: the key lives for this page only.
  }
}

function withKey(init) {
  const headers = new Headers(init.headers || {});
  const key = storedKey();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  return { ...init, headers };
}

const HINTS = {
  400: "The gateway refused the request.",
  401: "The API key was refused.",
  404: "This pool does not exist (any more).",
  429: "The gateway is rate limiting you.",
  502: "Every miner asked failed.",
  503: "No miner can take a request now.",
  504: "The deadline passed before any miner answered.",
};

/** The readable error of a failed response: the gateway's own message, with a hint. */
export async function errorOf(response) {
  let message = "";
  let code = null;
  try {
    const body = await response.json();
    message = String(body?.error?.message ?? "");
    code = body?.error?.code ?? null;
  } catch {
    // Not JSON (a proxy in between, say): the status is all there is.
  }
  // The gateway's own message says what happened; the hint stands in when there is none, and
  // leads for a refused key or a rate limit, where the message alone reads like a protocol note.
  const hint = HINTS[response.status] || `The gateway answered ${response.status}.`;
  let text = message || hint;
  if (message && (response.status === 401 || response.status === 429)) text = `${hint} ${message}`;
  const retry = response.headers.get("Retry-After");
  if (response.status === 429 && retry) text += ` Try again in ${retry} s.`;
  return new ApiError(text, response.status, code);
}

/** Ask the person for an API key in the page's key dialog; null when they cancel. */
function askForKey(reason) {
  const dialog = document.getElementById("key-dialog");
  const input = dialog.querySelector("input");
  dialog.querySelector(".key-reason").textContent = reason;
  input.value = "";
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => resolve(dialog.returnValue === "save" && input.value.trim() ? input.value.trim() : null),
      { once: true },
    );
    dialog.showModal();
    input.focus();
  });
}

/** fetch() with the stored key; on 401 ask for a key, keep it, and try again. */
export async function call(path, init = {}) {
  for (let tries = 0; ; tries += 1) {
    let response;
    try {
      response = await fetch(path, withKey(init));
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError("The gateway cannot be reached. Is it running?");
    }
    if (response.status !== 401) return response;
    const refused = await errorOf(response);
    if (tries >= MAX_KEY_TRIES) throw refused;
    const reason = storedKey()
      ? `${refused.message} Enter another key.`
      : "This gateway needs an API key.";
    const key = await askForKey(reason);
    if (key === null) throw refused;
    storeKey(key);
  }
}

/** GET a JSON document, or throw a readable ApiError. */
export async function getJSON(path) {
  const response = await call(path);
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

/** The events of an OpenAI stream (`data: {...}` lines up to `data: [DONE]`), parsed. */
export async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of frame.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
  }
}

/** The pools the gateway serves, by model id. */
export async function pools() {
  const models = await getJSON("/v1/models");
  return models.data.map((model) => model.id);
}
