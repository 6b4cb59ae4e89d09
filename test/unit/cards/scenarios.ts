import type { IncidentState } from '../../../core/model.js';
import {
  customerTasksOnlyIncident,
  everyStateIncident,
  failedWithClosedTasksIncident,
  incidentState,
  resolvedIncident,
  SAMPLE_NOW,
} from '../../support/incident-factory.js';

/** The card scenarios both renderers are snapshot-tested with. */
export const SCENARIOS: [string, () => IncidentState][] = [
  ['a fresh incident', () => incidentState()],
  ['an incident with every action state', everyStateIncident],
  ['an incident with only customer tasks', customerTasksOnlyIncident],
  ['a resolved incident', resolvedIncident],
  ['an incident whose remaining action failed, its customer tasks closed', failedWithClosedTasksIncident],
];

/** View options shared by the card tests: a fixed "now" and an API base URL. */
export const VIEW_OPTIONS = { now: SAMPLE_NOW, apiBaseUrl: 'https://mdr-bot.contoso.com' };
