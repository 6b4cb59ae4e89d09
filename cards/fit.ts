import { cut } from './text.js';
import type { IncidentCardView } from './view-types.js';

/**
 * Render `view`, and while the result does not `fit` a platform limit, render a smaller copy (`shrink`);
 * the last rendering when nothing is left to cut (`shrink` returns null).
 */
export function renderToFit<V, R>(
  view: V,
  render: (view: V) => R,
  fits: (rendered: R) => boolean,
  shrink: (view: V) => V | null,
): R {
  let current = view;
  let rendered = render(current);
  while (!fits(rendered)) {
    const smaller = shrink(current);
    if (!smaller) break;
    current = smaller;
    rendered = render(current);
  }
  return rendered;
}

/** An incident's card rendered to fit: its view cut with shrinkIncidentView until `fits`. */
export function renderIncidentToFit<R>(
  view: IncidentCardView,
  render: (view: IncidentCardView) => R,
  fits: (rendered: R) => boolean,
): R {
  return renderToFit(view, render, fits, shrinkIncidentView);
}

/**
 * A smaller copy of a view, for renderers that must fit a platform limit: drops the last line of the
 * longest list (counted in "and N more") or shortens the summary. Returns null when nothing is left to cut.
 */
export function shrinkIncidentView(view: IncidentCardView): IncidentCardView | null {
  const lines = view.groups.reduce((n, g) => n + g.items.length, 0);
  const assets = view.assets.reduce((n, g) => n + g.items.length, 0);
  if (view.summary.text.length > 400 && view.summary.text.length > lines * 40) {
    return {
      ...view,
      summary: { text: cut(view.summary.text, Math.floor(view.summary.text.length * 0.7)), cut: true },
    };
  }
  if (lines > 0 && lines >= assets / 2) {
    const groups = withoutLastOfLongest(view.groups);
    if (groups) return { ...view, groups };
  }
  if (assets > 0) {
    const shorter = withoutLastOfLongest(view.assets);
    if (shorter) return { ...view, assets: shorter };
  }
  if (view.summary.text.length > 100) {
    return { ...view, summary: { text: cut(view.summary.text, 100), cut: true } };
  }
  return null;
}

/** The lists with the last item of the longest one dropped (and counted in "and N more"); null when none. */
function withoutLastOfLongest<L extends { items: readonly unknown[]; more: number }>(
  lists: readonly L[],
): L[] | null {
  const longest = [...lists].sort((a, b) => b.items.length - a.items.length)[0];
  if (!longest) return null;
  return lists.map((l) => (l === longest ? { ...l, items: l.items.slice(0, -1), more: l.more + 1 } : l));
}
