/** MDE hosts (global, geo and legacy aliases) whose tokens are issued for the WindowsDefenderATP app. */
const MDE_GLOBAL_HOST =
  /^(?:[a-z]+\.)?api\.security\.microsoft\.com$|^api(?:-[a-z]+)?\.securitycenter\.microsoft\.com$/;
/** US government MDE hosts: the scope is the securitycenter host (community code; docs list hosts only). */
const MDE_GOV_HOST = /^api-(gcc|gov)\.(?:security|securitycenter)\.microsoft\.us$/;

/**
 * The `.default` scope for an API base URL: MDE's public hosts map to
 * `https://api.securitycenter.microsoft.com/.default`, every other host (Graph, sovereign clouds, test
 * servers) to `<origin>/.default`. Any path prefix of the base URL is ignored.
 */
export function scopeFor(baseUrl: string): string {
  const url = new URL(baseUrl);
  const host = url.hostname.toLowerCase();
  if (MDE_GLOBAL_HOST.test(host)) return 'https://api.securitycenter.microsoft.com/.default';
  const gov = MDE_GOV_HOST.exec(host);
  if (gov) return `https://api-${gov[1]}.securitycenter.microsoft.us/.default`;
  return `${url.origin}/.default`;
}
