import { SLACK_HTML_CSS } from './slack-html.js';
import { TEAMS_HTML_CSS, teamsRendererScript } from './teams-card.js';

/**
 * The preview page: a shell that loads the incidents as JSON and draws each one's Teams card (official
 * adaptivecards renderer) and Slack message (Block Kit as HTML). Clicks go to the same core as the
 * platforms, acting as the identity chosen at the top. No incident text is ever put into this page's
 * source: it arrives as JSON and is rendered by escaping renderers.
 */
export function previewPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>MDR bot: local preview</title>
<script src="/preview/vendor/adaptivecards.min.js"></script>
<style>
body{margin:0;font-family:"Segoe UI",-apple-system,Roboto,Helvetica,Arial,sans-serif;background:#f3f2f1;color:#242424}
header{display:flex;flex-wrap:wrap;gap:12px;align-items:center;padding:12px 20px;background:#1b1a19;color:#fff}
header h1{font-size:18px;margin:0 12px 0 0}
header label{font-size:14px}
header select,header button{font:inherit;font-size:14px;padding:4px 10px;border-radius:4px;border:1px solid #8a8886}
header button{background:#5b5fc7;color:#fff;border-color:#5b5fc7;cursor:pointer}
#notice{margin:12px 20px;padding:8px 12px;border-radius:4px;background:#fff4ce;display:none}
#notice.ok{background:#dff6dd}
main{padding:0 20px 40px}
.incident{margin:20px 0}
.incident h2{font-size:16px;margin:0 0 8px}
.panes{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:20px;align-items:start}
.pane h3{font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:#605e5c;margin:0 0 6px}
.pane.slack .frame{background:#fff;border:1px solid #ddd;border-radius:8px;padding:8px 0}
.empty{padding:40px;text-align:center;color:#605e5c}
#emails{padding:0 20px 40px}
#emails h2{font-size:16px}
.email{background:#fff;border:1px solid #ddd;border-radius:8px;padding:8px 12px;margin:0 0 12px}
.email pre{white-space:pre-wrap;font:inherit;font-size:13px;margin:8px 0 0}
${TEAMS_HTML_CSS}
${SLACK_HTML_CSS}
</style></head>
<body>
<header><h1>MDR bot preview</h1>
<label>Act as <select id="as"></select></label>
<button id="sample" type="button">Send sample incident</button>
<span id="mode"></span></header>
<div id="notice" role="status"></div>
<main id="incidents"><p class="empty">Loading…</p></main>
<section id="emails" aria-label="Emails that would have been sent"></section>
<script>
${teamsRendererScript()}
(function(){
  var select = document.getElementById('as');
  var list = document.getElementById('incidents');
  var notice = document.getElementById('notice');
  var identities = [];
  var lastState = '';

  function show(message, ok){
    notice.textContent = message;
    notice.className = ok ? 'ok' : '';
    notice.style.display = message ? 'block' : 'none';
  }
  function post(path, body){
    return fetch(path, {method:'POST', headers:{'content-type':'application/json'}, body: JSON.stringify(body)})
      .then(function(r){ return r.json(); });
  }
  function act(verb, data){
    if (!data || !data.incidentId) return;
    if (verb === 'refresh') { load(); return; }
    var body = {verb: verb, incidentId: data.incidentId, actionId: data.actionId, as: select.value};
    // The scan chosen on the card: a Slack button's value, or the Teams choice set of this action.
    var scanType = data.scanType || data['scanType:' + data.actionId];
    if (verb === 'approve' && scanType) body.scanType = scanType;
    // What was typed under Skip.
    var reason = data['reason-' + data.actionId];
    if (verb === 'skip' && typeof reason === 'string') body.reason = reason;
    post('/preview/api/action', body)
      .then(function(r){ show(r.message, r.ok); load(); });
  }
  function load(){
    return fetch('/preview/api/state?as=' + encodeURIComponent(select.value || '')).then(function(r){ return r.text(); }).then(function(text){
      if (text === lastState) return;
      lastState = text;
      var state = JSON.parse(text);
      if (identities.length === 0) {
        identities = state.identities;
        identities.forEach(function(i){
          var o = document.createElement('option'); o.value = i.id; o.textContent = i.label; select.appendChild(o);
        });
      }
      list.textContent = '';
      if (state.incidents.length === 0) {
        var p = document.createElement('p'); p.className = 'empty';
        p.textContent = 'No incidents yet: send the sample incident, or POST one to /api/incidents.';
        list.appendChild(p);
      }
      state.incidents.forEach(function(inc){
        var section = document.createElement('section'); section.className = 'incident'; section.dataset.incidentId = inc.id;
        var h = document.createElement('h2'); h.textContent = 'Incident ' + inc.id + ' · ' + inc.managedStatus; section.appendChild(h);
        var panes = document.createElement('div'); panes.className = 'panes';
        var teams = document.createElement('div'); teams.className = 'pane teams';
        var th = document.createElement('h3'); th.textContent = 'Microsoft Teams'; teams.appendChild(th);
        teams.appendChild(window.renderTeamsCard(inc.teams, act));
        var slack = document.createElement('div'); slack.className = 'pane slack';
        var sh = document.createElement('h3'); sh.textContent = 'Slack'; slack.appendChild(sh);
        var frame = document.createElement('div'); frame.className = 'frame';
        var msg = document.createElement('div'); msg.className = 'slack-msg';
        var avatar = document.createElement('div'); avatar.className = 'avatar'; avatar.textContent = 'MDR';
        var body = document.createElement('div'); body.className = 'body';
        body.innerHTML = inc.slackHtml; // produced by the escaping Block Kit renderer
        msg.appendChild(avatar); msg.appendChild(body); frame.appendChild(msg);
        slack.appendChild(frame);
        panes.appendChild(teams); panes.appendChild(slack); section.appendChild(panes);
        list.appendChild(section);
      });
      renderEmails(state.emails || []);
    });
  }
  function renderEmails(emails){
    var box = document.getElementById('emails');
    box.textContent = '';
    var h = document.createElement('h2');
    h.textContent = 'Emails that would have been sent (' + emails.length + ')';
    box.appendChild(h);
    emails.forEach(function(m){
      var div = document.createElement('div'); div.className = 'email';
      var head = document.createElement('div');
      head.textContent = m.at + ' · from ' + m.from + ' to ' + m.to.join(', ') + ' · ' + m.subject;
      var pre = document.createElement('pre'); pre.textContent = m.text;
      div.appendChild(head); div.appendChild(pre); box.appendChild(div);
    });
  }
  list.addEventListener('click', function(e){
    var b = e.target.closest('button[data-action-id]');
    if (!b) return;
    var verb = b.getAttribute('data-action-id').split(':')[0];
    var data; try { data = JSON.parse(b.getAttribute('data-value')); } catch (err) { return; }
    if (b.title && !window.confirm('Are you sure? ' + b.textContent)) return;
    // Slack's Skip opens a modal asking why: the page asks the same.
    if (verb === 'skip') {
      var why = window.prompt('Why is this task skipped?');
      if (why === null) return;
      data['reason-' + data.actionId] = why;
    }
    act(verb, data);
  });
  select.addEventListener('change', function(){ show(''); lastState = ''; load(); });
  document.getElementById('sample').addEventListener('click', function(){
    post('/preview/api/sample', {}).then(function(r){ show(r.message, r.ok); load(); });
  });
  load();
  setInterval(load, 3000);
})();
</script></body></html>
`;
}
