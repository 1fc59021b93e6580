// Measures the first SVG of the page as a person sees it: the height of every text, every pair of texts
// (of different nodes, edges or clusters) that overlap, every text over another node's box, and whether
// the picture is cut off. Writes the report as JSON into a pre element (id layout), for --dump-dom to read.
(() => {
  const out = document.createElement('pre'); out.id = 'layout';
  const svg = document.querySelector('svg');
  const shrink = (r) => { const h = r.height * 0.15; return {left: r.left, right: r.right, top: r.top + h, bottom: r.bottom - h}; };
  const hit = (a, b, tol) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > tol && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > tol;
  const texts = [...svg.querySelectorAll('text')].map(t => ({g: t.closest('g.node, g.edge, g.cluster, g.graph'), text: t.textContent, rect: t.getBoundingClientRect()}));
  const boxes = [...svg.querySelectorAll('g.node')].map(g => ({g, title: g.querySelector('title').textContent, shape: g.querySelector('path, polygon, ellipse')})).filter(b => b.shape).map(b => ({...b, rect: b.shape.getBoundingClientRect()}));
  const overlaps = [];
  for (let i = 0; i < texts.length; i++) {
    for (let j = i + 1; j < texts.length; j++) {
      if (texts[i].g === texts[j].g) continue;
      if (hit(shrink(texts[i].rect), shrink(texts[j].rect), 1)) overlaps.push(['text', texts[i].text, texts[j].text]);
    }
    for (const b of boxes) {
      if (b.g === texts[i].g) continue;
      if (hit(shrink(texts[i].rect), b.rect, 1)) overlaps.push(['box', texts[i].text, b.title]);
    }
  }
  const picture = svg.parentElement;
  const report = {
    minTextHeight: Math.min(...texts.map(t => t.rect.height)),
    smallest: texts.reduce((a, t) => t.rect.height < a.rect.height ? t : a).text,
    svgWidth: svg.getBoundingClientRect().width, pictureScroll: picture.scrollWidth, pictureClient: picture.clientWidth,
    overflowX: getComputedStyle(picture).overflowX, viewport: window.innerWidth, overlaps,
  };
  out.textContent = JSON.stringify(report);
  document.body.appendChild(out);
})();
