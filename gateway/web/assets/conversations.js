// Conversations kept in the browser's localStorage: several, each with its own settings.

const STORE = "bitgate.conversations.v1";
const MAX_CONVERSATIONS = 50;

function newId() {
  return `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

export class Conversations {
  constructor() {
    this.list = [];
    this.currentId = null;
    this.load();
    if (!this.list.length) this.create();
  }

  load() {
    try {
      const saved = JSON.parse(localStorage.getItem(STORE) || "null");
      if (saved && Array.isArray(saved.list)) {
        this.list = saved.list.filter((c) => c && typeof c.id === "string" && Array.isArray(c.messages));
        this.currentId = saved.currentId;
      }
    } catch {
      this.list = [];
    }
    if (!this.list.some((c) => c.id === this.currentId)) this.currentId = this.list[0]?.id ?? null;
  }

  save() {
    try {
      localStorage.setItem(STORE, JSON.stringify({ list: this.list, currentId: this.currentId }));
    } catch {
      // Storage full or disabled: the conversation still lives in this page.
    }
  }

  get current() {
    return this.list.find((c) => c.id === this.currentId);
  }

  /** A new, empty conversation with the settings of the current one; it becomes current. */
  create() {
    const from = this.current;
    const conversation = {
      id: newId(),
      title: "New chat",
      pool: from?.pool ?? "",
      strategy: from?.strategy ?? "",
      ranker: from?.ranker ?? "",
      messages: [],
    };
    this.list.unshift(conversation);
    this.list.length = Math.min(this.list.length, MAX_CONVERSATIONS);
    this.currentId = conversation.id;
    this.save();
    return conversation;
  }

  select(id) {
    if (this.list.some((c) => c.id === id)) this.currentId = id;
    this.save();
  }

  remove(id) {
    this.list = this.list.filter((c) => c.id !== id);
    if (this.currentId === id) this.currentId = this.list[0]?.id ?? null;
    if (!this.list.length) this.create();
    this.save();
  }

  clearAll() {
    this.list = [];
    this.currentId = null;
    this.create();
  }
}

/** The messages to send to the gateway: the turns that carry text, without errors. */
export function history(conversation) {
  return conversation.messages
    .filter((m) => (m.role === "user" || m.role === "assistant") && !m.error && m.content)
    .map((m) => ({ role: m.role, content: m.content }));
}
