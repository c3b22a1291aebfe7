// Miner replies are untrusted: Markdown is rendered with raw HTML shown as text, then the
// result goes through DOMPurify before it touches the page.

import { Marked } from "./vendor/marked-18.2.1.esm.js";
import DOMPurify from "./vendor/purify-3.5.0.es.mjs";

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escape = (text) => String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);

const markdown = new Marked({
  gfm: true,
  renderer: {
    // Raw HTML in a reply is text, never markup.
    html: (token) => escape(token.text),
    // An image would be a request to wherever the miner says: show where it points instead.
    image: (token) => `<em>[image: ${escape(token.text || "")} — ${escape(token.href)}]</em>`,
  },
});

const POLICY = {
  FORBID_TAGS: ["style", "img", "svg", "math", "form", "input", "button", "textarea", "select",
    "iframe", "object", "embed", "video", "audio", "source", "picture", "link", "meta", "base"],
  FORBID_ATTR: ["style", "id", "class", "srcset"],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
  ALLOW_DATA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

function addCopyButtons(fragment) {
  for (const pre of fragment.querySelectorAll("pre")) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "Copy";
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(pre.querySelector("code")?.textContent ?? pre.textContent);
        button.textContent = "Copied";
      } catch {
        button.textContent = "Copy failed";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
    const wrapper = document.createElement("div");
    wrapper.className = "code-block";
    pre.replaceWith(wrapper);
    wrapper.append(button, pre);
  }
  return fragment;
}

/** Render untrusted Markdown into `element`, replacing what it held. */
export function renderMarkdown(element, text) {
  const html = markdown.parse(String(text ?? ""), { async: false });
  element.replaceChildren(addCopyButtons(DOMPurify.sanitize(html, POLICY)));
}
