// Renders the guide pages' math with KaTeX in the browser. The pages use GitHub's math syntax,
// which reads the same on GitHub: display math in ```math blocks, inline math as $`...`$ (a code
// span between dollar signs). Typedoc renders those as <pre><code class="math"> and as
// $<code>...</code>$; this script swaps them for KaTeX's output. Without the script (or offline)
// the TeX source stays readable as code.
(() => {
  const version = '0.16.22';
  const base = `https://cdn.jsdelivr.net/npm/katex@${version}/dist`;

  function displayBlocks() {
    return [...document.querySelectorAll('pre > code.math, pre > code.language-math')];
  }

  function inlineSpans() {
    const spans = [];
    for (const code of document.querySelectorAll('code')) {
      if (code.parentElement?.tagName === 'PRE') continue;
      const before = code.previousSibling;
      const after = code.nextSibling;
      if (before?.nodeType !== Node.TEXT_NODE || after?.nodeType !== Node.TEXT_NODE) continue;
      if (before.textContent.endsWith('$') && after.textContent.startsWith('$')) spans.push(code);
    }
    return spans;
  }

  function render(katex) {
    for (const code of displayBlocks()) {
      const div = document.createElement('div');
      div.className = 'katex-display-block';
      katex.render(code.textContent, div, { displayMode: true, throwOnError: false });
      code.parentElement.replaceWith(div);
    }
    for (const code of inlineSpans()) {
      const span = document.createElement('span');
      katex.render(code.textContent, span, { displayMode: false, throwOnError: false });
      code.previousSibling.textContent = code.previousSibling.textContent.slice(0, -1);
      code.nextSibling.textContent = code.nextSibling.textContent.slice(1);
      code.replaceWith(span);
    }
  }

  function start() {
    if (displayBlocks().length === 0 && inlineSpans().length === 0) return;
    const css = document.createElement('link');
    css.rel = 'stylesheet';
    css.href = `${base}/katex.min.css`;
    css.crossOrigin = 'anonymous';
    document.head.append(css);
    const style = document.createElement('style');
    style.textContent = '.katex-display-block { overflow-x: auto; overflow-y: hidden; margin: 1em 0; }';
    document.head.append(style);
    const script = document.createElement('script');
    script.src = `${base}/katex.min.js`;
    script.crossOrigin = 'anonymous';
    script.onload = () => render(window.katex);
    document.head.append(script);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
