// The chat page: conversations, the composer, streamed replies and their candidate panels.

import { ApiError, call, errorOf, events, getJSON, pools } from "./api.js";
import { Conversations, history } from "./conversations.js";
import { element } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { candidatePanel } from "./panel.js";

const $ = (id) => document.getElementById(id);
const store = new Conversations();
let running = null;

function messageView(message) {
  const body = element("div", { className: "body" });
  const view = element("article", { className: `message ${message.role}` }, body);
  if (message.role === "user") {
    body.textContent = message.content;
    return view;
  }
  if (message.content) renderMarkdown(body, message.content);
  if (message.stopped) view.append(element("p", { className: "note" }, "Stopped."));
  if (message.error) {
    view.classList.add("failed");
    view.append(element("p", { className: "error", role: "alert" }, message.error));
  }
  if (message.bitgate) view.append(candidatePanel(message.bitgate));
  return view;
}

function showMessages() {
  const conversation = store.current;
  const views = conversation.messages.map(messageView);
  if (!views.length) {
    views.push(element("p", { className: "empty" },
      "Ask the pool anything. Each message goes to several miners at once; the best reply "
      + "comes back, and the panel under it shows how every miner did."));
  }
  $("messages").replaceChildren(...views);
  $("messages").scrollTop = $("messages").scrollHeight;
}

function showConversations() {
  const items = store.list.map((conversation) => {
    const open = element("button", { type: "button", className: "open", title: conversation.title }, conversation.title);
    open.addEventListener("click", () => switchTo(conversation.id));
    const remove = element("button", { type: "button", className: "remove", title: "Delete this conversation" }, "×");
    remove.setAttribute("aria-label", `Delete ${conversation.title}`);
    remove.addEventListener("click", () => {
      stop();
      store.remove(conversation.id);
      showAll();
    });
    const item = element("li", { className: conversation.id === store.currentId ? "current" : "" }, open, remove);
    return item;
  });
  $("conversations").replaceChildren(...items);
}

function showSettings() {
  const conversation = store.current;
  for (const name of ["pool", "strategy", "ranker"]) {
    const select = $(name);
    if (!select.options.length) continue;
    if ([...select.options].some((o) => o.value === conversation[name])) select.value = conversation[name];
    conversation[name] = select.value;
  }
}

function showAll() {
  showConversations();
  showSettings();
  showMessages();
}

function switchTo(id) {
  stop();
  store.select(id);
  showAll();
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").hidden = !busy;
  $("send").hidden = busy;
}

function notice(text, retry) {
  const box = $("notice");
  box.hidden = !text;
  box.replaceChildren(text || "");
  if (retry) {
    const again = element("button", { type: "button" }, "Retry");
    again.addEventListener("click", retry);
    box.append(" ", again);
  }
}

function readable(error) {
  if (error instanceof ApiError) return error.message;
  return `Something went wrong: ${error?.message ?? error}`;
}

function requestBody(conversation) {
  const body = { model: conversation.pool, messages: history(conversation), stream: true };
  const options = {};
  if (conversation.strategy) options.strategy = conversation.strategy;
  if (conversation.ranker) options.ranker = conversation.ranker;
  if (Object.keys(options).length) body.bitgate = options;
  return body;
}

async function streamReply(reply, view, signal, conversation) {
  const response = await call("/v1/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(requestBody(conversation)),
    signal,
  });
  if (!response.ok) throw await errorOf(response);
  const body = view.querySelector(".body");
  let scheduled = false;
  for await (const chunk of events(response)) {
    if (chunk.error) reply.error = `The reply broke off. ${chunk.error.message ?? ""}`.trim();
    const delta = chunk.choices?.[0]?.delta?.content;
    if (typeof delta === "string" && delta) {
      reply.content += delta;
      if (!scheduled) {
        scheduled = true;
        requestAnimationFrame(() => {
          scheduled = false;
          renderMarkdown(body, reply.content);
        });
      }
    }
    if (chunk.bitgate) reply.bitgate = chunk.bitgate;
  }
}

async function send(text) {
  const conversation = store.current;
  if (!conversation.pool) {
    notice("Pick a pool first.");
    return;
  }
  notice("");
  if (!conversation.messages.length) conversation.title = text.slice(0, 48);
  conversation.messages.push({ role: "user", content: text });
  const reply = { role: "assistant", content: "" };
  $("messages").querySelector(".empty")?.remove();
  $("messages").append(messageView(conversation.messages.at(-1)));
  const view = messageView(reply);
  view.classList.add("streaming");
  $("messages").append(view);
  $("messages").scrollTop = $("messages").scrollHeight;
  store.save();
  showConversations();

  const controller = new AbortController();
  running = controller;
  setBusy(true);
  try {
    await streamReply(reply, view, controller.signal, conversation);
    if (!reply.content && !reply.error) reply.error = "The miner sent an empty reply.";
  } catch (error) {
    if (error.name === "AbortError") reply.stopped = true;
    else reply.error = readable(error);
  } finally {
    if (running === controller) running = null;
    conversation.messages.push(reply);
    store.save();
    view.replaceWith(messageView(reply));
    $("messages").scrollTop = $("messages").scrollHeight;
    setBusy(false);
    $("prompt").focus();
  }
}

function stop() {
  running?.abort();
  running = null;
}

function fill(select, values, first) {
  const options = values.map((value) => element("option", { value }, value));
  if (first) options.unshift(element("option", { value: "" }, first));
  select.replaceChildren(...options);
}

async function loadOptions() {
  notice("");
  try {
    const [names, options] = await Promise.all([pools(), getJSON("/ui/options")]);
    fill($("pool"), names);
    fill($("strategy"), options.strategies, "pool default");
    fill($("ranker"), options.rankers, "pool default");
    showSettings();
    store.save();
    if (!names.length) notice("The gateway serves no pool.");
  } catch (error) {
    notice(readable(error), loadOptions);
  }
}

function wire() {
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("prompt").value.trim();
    if (!text || running) return;
    $("prompt").value = "";
    send(text);
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("stop").addEventListener("click", stop);
  $("new-chat").addEventListener("click", () => {
    stop();
    store.create();
    showAll();
    $("prompt").focus();
  });
  $("clear-all").addEventListener("click", () => {
    stop();
    store.clearAll();
    showAll();
  });
  for (const name of ["pool", "strategy", "ranker"]) {
    $(name).addEventListener("change", () => {
      store.current[name] = $(name).value;
      store.save();
    });
  }
}

wire();
showAll();
loadOptions();
