/**
 * The view model as the rest of the bot sees it: one typed view per incident card, which both renderers
 * (cards/teams/render.ts, cards/slack/render.ts) draw from, and the words for an action or a task's asset.
 * Each part lives in a file of its own: view-types, incident-view, action-line, assets, labels, text,
 * fit and task-list-view.
 */
export { describeAction, taskIdentifiers } from './assets.js';
export { type BuildIncidentViewOptions, buildIncidentView } from './incident-view.js';
export { displayIdentity, formatWhen } from './text.js';
export type { IncidentCardView } from './view-types.js';
