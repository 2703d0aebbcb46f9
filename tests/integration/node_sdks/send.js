// Replays a list of Segment-spec calls through one vendor's official Node.js SDK against the hub.
// stdin: {"sdk": "segment" | "rudderstack", "host": "http://127.0.0.1:PORT", "writeKey": "...",
//         "calls": [["track" | "identify", {...message}], ...]}
// stdout: {"errors": [...]}: every error the SDK reported (error event, errorHandler, callbacks).
// Exit status 0 once the SDK has flushed, whatever it reported; the test reads `errors`.
'use strict';

const { Analytics: SegmentAnalytics } = require('@segment/analytics-node');
const RudderAnalytics = require('@rudderstack/rudder-sdk-node');

function describe(err) {
  if (!err) return String(err);
  const response = err.response;  // axios (RudderStack) keeps the hub's answer here
  const status = response ? ` ${response.status} ${JSON.stringify(response.data)}` : '';
  return `${err.code || err.name || 'Error'}: ${err.message || err.reason || JSON.stringify(err)}${status}`;
}

async function sendWithSegment({ host, writeKey, calls }, errors) {
  // Fast flushing and one retry keep a failing run short; the SDK's defaults are 15 events / 10 s / 3.
  const analytics = new SegmentAnalytics({ writeKey, host, flushAt: 20, flushInterval: 100, maxRetries: 1 });
  analytics.on('error', (err) => errors.push(describe(err)));
  for (const [call, message] of calls) {
    analytics[call](message, (err) => { if (err) errors.push(describe(err)); });
  }
  await analytics.closeAndFlush({ timeout: 20000 });
}

async function sendWithRudderStack({ host, writeKey, calls }, errors) {
  // Default gzip (on); fast flushing and one retry as above.
  const client = new RudderAnalytics(writeKey, {
    dataPlaneUrl: host, flushAt: 20, flushInterval: 100, retryCount: 1, logLevel: 'error',
    errorHandler: (err) => errors.push(describe(err)),
  });
  for (const [call, message] of calls) {
    client[call](message, (err) => { if (err) errors.push(describe(err)); });
  }
  await new Promise((resolve) => client.flush(() => resolve()));
}

const SENDERS = { segment: sendWithSegment, rudderstack: sendWithRudderStack };

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const request = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const send = SENDERS[request.sdk];
  if (!send) throw new Error(`unknown sdk ${request.sdk}; one of ${Object.keys(SENDERS)}`);
  const errors = [];
  await send(request, errors);
  process.stdout.write(JSON.stringify({ errors }) + '\n');
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
