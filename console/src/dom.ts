// A tiny element builder: the console's whole "UI stack" (ADR 0011). Text is always set as
// text (never parsed as HTML), listeners are attached with addEventListener, so nothing here
// needs inline script, innerHTML or Trusted Types policies.

/** What may be placed inside an element. */
export type Child = Node | string | number | null | undefined | false | readonly Child[];

/** Attributes (string/number/boolean) and `on<event>` listeners of an element. */
export type Props = Record<
  string,
  string | number | boolean | null | undefined | ((event: Event) => void)
>;

function append(parent: Node, child: Child): void {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(parent, c);
  } else if (child instanceof Node) {
    parent.appendChild(child);
  } else {
    parent.appendChild(document.createTextNode(String(child)));
  }
}

/**
 * Creates an element with attributes, listeners and children.
 *
 * @example
 * h("button", { type: "button", onclick: () => cancel() }, "Cancel")
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (typeof value === "function") {
      el.addEventListener(key.slice(2), value as EventListener);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else if (value !== false && value !== null && value !== undefined) {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

/** Replaces an element's children. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A unique element id for label/aria wiring. */
let counter = 0;
export function uid(prefix: string): string {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** A labelled form field: `<label for>` + the control + an optional hint wired by aria-describedby. */
export function field(
  label: string,
  control: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement,
  hint?: string,
): HTMLDivElement {
  if (!control.id) control.id = uid("f");
  const hintEl = hint ? h("p", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hintEl);
}
