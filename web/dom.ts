/** A tiny element builder for the dashboard, and text that follows the chosen language. */
import { onLanguage, t } from './i18n/index.ts';

type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<Record<string, string | number | boolean | ((event: Event) => void)>> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(key.replace(/^on/, '').toLowerCase(), value);
    else if (key === 'testid') el.dataset['testid'] = String(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'object' ? child : String(child));
  }
  return el;
}

export function replace(target: Element, ...children: Child[]): void {
  target.replaceChildren(
    ...children
      .filter((c): c is Node | string | number => c !== null && c !== undefined && c !== false)
      .map((c) => (typeof c === 'number' ? String(c) : c)),
  );
}

type Params = Record<string, string | number>;
interface Live {
  node: WeakRef<Text | Element>;
  apply: (node: Text | Element) => void;
}
const live = new Set<Live>();

function track(node: Text | Element, apply: (node: Text | Element) => void): void {
  apply(node);
  live.add({ node: new WeakRef(node), apply });
  // Cards re-render every few seconds: drop the entries whose nodes are gone.
  if (live.size % 1000 === 0) for (const entry of live) if (entry.node.deref() === undefined) live.delete(entry);
}

// One listener for the whole page: live texts re-translate in place, so cards keep their state.
onLanguage(() => {
  for (const entry of live) {
    const node = entry.node.deref();
    if (node === undefined) live.delete(entry);
    else entry.apply(node);
  }
});

/** A text node showing `t(key, params)`, updated when the language changes. Params may be computed at switch time. */
export function tr(key: string, params: Params | (() => Params) = {}): Text {
  const node = document.createTextNode('');
  track(node, (n) => (n.textContent = t(key, typeof params === 'function' ? params() : params)));
  return node;
}

/** Sets `attr` on `el` to `t(key, params)`, and again after each language switch; returns `el`. */
export function trAttr<E extends Element>(el: E, attr: string, key: string, params: Params = {}): E {
  track(el, (n) => (n as Element).setAttribute(attr, t(key, params)));
  return el;
}

/** Replaces `target`'s content with a live translation. */
export function say(target: Element, key: string, params: Params = {}): void {
  replace(target, tr(key, params));
}
