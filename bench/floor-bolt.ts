/**
 * The Slack floor of `npm run bench`: a bare Bolt app that verifies the signature and acknowledges every
 * button click, nothing else. PORT and SLACK_SIGNING_SECRET from the environment; listens on 127.0.0.1.
 */
import { App, ExpressReceiver, LogLevel } from '@slack/bolt';

const receiver = new ExpressReceiver({
  signingSecret: process.env.SLACK_SIGNING_SECRET ?? '',
  endpoints: '/slack/events',
  processBeforeResponse: false,
});
const app = new App({
  receiver,
  authorize: async () => ({ botToken: 'xoxb-bench-floor' }),
  logLevel: LogLevel.ERROR,
});
app.action(/.*/, async ({ ack }) => {
  await ack();
});
receiver.app.get('/healthz', (_req, res) => {
  res.send('ok');
});
const server = receiver.app.listen(Number(process.env.PORT), '127.0.0.1');
process.once('SIGTERM', () => {
  server.close();
  process.exit(0);
});
