/* Small DOM helpers: build elements, show and hide, and redraw without losing focus.
 *
 * Redraws update elements in place where they can (text, attributes), and lists are
 * reconciled by key, so the element a person is on stays in the document and keeps focus.
 * Where a part must be rebuilt, focusable elements carry `data-focus-key` and the
 * element with the same key gets the focus back.
 */

export const $ = (id) => document.getElementById(id);

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function show(el, visible) { el.hidden = !visible; }

/** Set text only when it differs: an unchanged live or focused element is left alone. */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

export function setAttr(el, name, value) {
  if (value === null || value === undefined || value === false) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else if (el.getAttribute(name) !== String(value)) {
    el.setAttribute(name, String(value));
  }
}

/** Run `rebuild`, then give the focus back to the element with the same focus key. */
export function keepingFocus(container, rebuild) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.getAttribute('data-focus-key') : null;
  rebuild();
  if (key && !active.isConnected) {
    const again = container.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
}

/**
 * Make `parent`'s children the elements for `items`, in order, reusing the element of each
 * key: stale elements are removed first, so the ones kept never move (moving an element
 * out of the document and back would take its focus away).
 */
export function reconcile(parent, items, { key, create, update }) {
  const wanted = new Map(items.map((item) => [key(item), item]));
  for (const el of [...parent.children]) {
    if (!wanted.has(el.dataset.key)) el.remove();
  }
  const existing = new Map([...parent.children].map((el) => [el.dataset.key, el]));
  let cursor = parent.firstElementChild;
  for (const [k, item] of wanted) {
    let el = existing.get(k);
    if (!el) {
      el = create(item);
      el.dataset.key = k;
    }
    update(el, item);
    if (el === cursor) cursor = cursor.nextElementSibling;
    else parent.insertBefore(el, cursor);
  }
}

export function prefersReducedMotion() {
  return window.matchMedia('(prefers-reduced-motion: reduce)').matches;
}

/** Bring `el` into view if it is not (a tapped day's detail on a phone, for one). */
export function revealIfHidden(el) {
  const box = el.getBoundingClientRect();
  if (box.top >= 0 && box.bottom <= window.innerHeight) return;
  el.scrollIntoView({ block: 'nearest', behavior: prefersReducedMotion() ? 'auto' : 'smooth' });
}

/**
 * A horizontally scrolling region that says so: when its content is wider than it, it
 * becomes a focusable, labelled region (arrow keys scroll it) and its cue is shown.
 */
export function watchOverflow(region, cue, labels) {
  const update = () => {
    const overflows = region.scrollWidth > region.clientWidth + 1;
    show(cue, overflows);
    setAttr(region, 'tabindex', overflows ? '0' : null);
    setAttr(region, 'aria-label', overflows ? labels().scrolling : labels().plain);
  };
  new ResizeObserver(update).observe(region);
  const content = region.firstElementChild;
  if (content) new ResizeObserver(update).observe(content);
  return update;
}
