/**
 * xterm.js (v6, DOM renderer) styles itself with <style> elements it writes
 * at run time (cell size, theme colours, scrollbar) and with style
 * attributes on cells of 24-bit colour. The page's Content-Security-Policy
 * (style-src 'self', no 'unsafe-inline') blocks both, which leaves the
 * terminal without its geometry and colours. Styles set through the CSSOM
 * are not inline markup and are allowed, so this mirrors them there: the
 * text of every <style> element inside `root` goes into one constructed
 * stylesheet adopted by the document, and a cell's blocked style attribute
 * is applied through element.style. Without a CSP (or with one that allows
 * inline styles) it changes nothing that was not already in effect.
 *
 * Returns a function that stops mirroring and drops the stylesheet.
 */
export function mirrorInlineStyles(root: HTMLElement): () => void {
  const doc = root.ownerDocument;
  const sheet = new CSSStyleSheet();
  doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
  let lastText = "";

  const syncStyleElements = () => {
    const text = [...root.querySelectorAll("style")].map((s) => s.textContent ?? "").join("\n");
    if (text === lastText) return;
    lastText = text;
    sheet.replaceSync(text);
  };

  const applyStyleAttribute = (el: Element) => {
    const attr = el.getAttribute("style");
    // Applied already (allowed inline, or mirrored before): setting it again would only cause another mutation.
    if (!attr || !(el instanceof HTMLElement) || el.style.length > 0) return;
    el.style.cssText = attr;
  };

  const observer = new MutationObserver((mutations) => {
    let styles = false;
    for (const m of mutations) {
      const target = m.target instanceof Element ? m.target : m.target.parentElement;
      if (target?.closest("style")) styles = true;
      if (m.type === "attributes" && m.target instanceof Element) applyStyleAttribute(m.target);
      for (const node of m.addedNodes) {
        if (!(node instanceof Element)) continue;
        if (node.tagName === "STYLE" || node.querySelector("style")) styles = true;
        applyStyleAttribute(node);
        for (const el of node.querySelectorAll("[style]")) applyStyleAttribute(el);
      }
    }
    if (styles) syncStyleElements();
  });
  observer.observe(root, { subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ["style"] });
  syncStyleElements();

  return () => {
    observer.disconnect();
    doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s !== sheet);
  };
}
