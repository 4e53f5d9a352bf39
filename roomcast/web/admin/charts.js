// Sparklines without a chart library: one SVG path per series, scaled to its maximum.
const SVG = "http://www.w3.org/2000/svg";

/**
 * Draw `points` ([[t, value], ...], oldest first) over the last `span` seconds ending at
 * `now` into `svg` (an <svg> element with a viewBox of `width` × `height`).
 * The element's data-max, data-last and data-points say what is drawn (for tests and
 * screen readers; the title says it in words).
 */
export function sparkline(svg, points, { now, span, width = 300, height = 48, label = "" }) {
  const max = points.reduce((m, [, v]) => Math.max(m, v), 0);
  const top = max > 0 ? max : 1;
  const x = (t) => (width * (t - (now - span))) / span;
  const y = (v) => height - 2 - ((height - 4) * v) / top;
  const d = points
    .filter(([t]) => t >= now - span)
    .map(([t, v], i) => `${i === 0 ? "M" : "L"}${x(t).toFixed(1)},${y(v).toFixed(1)}`)
    .join(" ");
  let path = svg.querySelector("path");
  if (!path) {
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.append(document.createElementNS(SVG, "title"));
    path = document.createElementNS(SVG, "path");
    svg.append(path);
  }
  path.setAttribute("d", d || `M0,${height - 2} L${width},${height - 2}`);
  const last = points.length ? points[points.length - 1][1] : 0;
  svg.dataset.max = String(max);
  svg.dataset.last = String(last);
  svg.dataset.points = String(points.length);
  svg.querySelector("title").textContent = `${label}: now ${format(last)}, peak ${format(max)} (last 15 minutes)`;
}

export function format(value) {
  if (value >= 100 || Number.isInteger(value)) return String(Math.round(value));
  return value.toFixed(1);
}

export function svgElement() {
  return document.createElementNS(SVG, "svg");
}
