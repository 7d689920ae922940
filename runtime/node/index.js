'use strict';
// Lambdalet's Node.js runtime (nodejs20.x, nodejs22.x, nodejs24.x): a
// lean runtime interface client over the Runtime API, with the behaviour
// of AWS's (aws-lambda-ric, which the tests run beside it as a check).
//
// It may start before its function is known (a spare sandbox): with
// LAMBDALET_CONFIG=stdin in its environment it loads itself, then blocks
// reading one JSON line from fd 0, {"env": {...}}, the function's whole
// environment, which replaces its own; fd 0 then becomes /dev/null. Only
// then does it read _HANDLER, load the handler and ask for events.
//
// Modules: rapi.js (the Runtime API client), handler.js (finding the
// handler), invoke.js (one call and when it is over), streaming.js
// (response streaming), logging.js (console in AWS's formats), errors.js.

const fs = require('fs');
const { RuntimeApi } = require('./rapi.js');
const handler = require('./handler.js');
const logging = require('./logging.js');
const errors = require('./errors.js');
const { Invoker } = require('./invoke.js');
const { HttpResponseStream } = require('./streaming.js');

// The function's environment, from the launcher on fd 0.
function receiveConfig() {
  const parts = [];
  const buf = Buffer.alloc(65536);
  for (;;) {
    const n = fs.readSync(0, buf, 0, buf.length, null);
    if (n === 0) {
      break;
    }
    parts.push(Buffer.from(buf.subarray(0, n)));
    if (buf.subarray(0, n).includes(10)) {
      break;
    }
  }
  const config = JSON.parse(Buffer.concat(parts).toString('utf8'));
  for (const key of Object.keys(process.env)) {
    delete process.env[key];
  }
  Object.assign(process.env, config.env);
  // Nothing more comes on fd 0: the function sees an empty stdin, as on AWS.
  fs.closeSync(0);
  fs.openSync('/dev/null', 'r');
}

let currentId = null; // the call being run, if any
let api = null;

function fatal(title, err, exitCode) {
  logging.logError(title, err);
  if (api === null) {
    process.exit(exitCode);
  }
  const doc = errors.toResponse(err);
  const body = JSON.stringify(doc);
  const posted = currentId === null ? api.postInitError(doc.errorType, body) : api.postError(currentId, doc.errorType, body);
  posted.then(
    () => process.exit(exitCode),
    () => process.exit(exitCode),
  );
}

async function main() {
  if (process.env.LAMBDALET_CONFIG === 'stdin') {
    // Warm what every function needs before waiting: the ES module loader
    // costs milliseconds on its first use.
    await import('data:text/javascript,export default 0');
    receiveConfig();
  }
  const env = process.env;
  process.chdir(env.LAMBDA_TASK_ROOT || '/var/task');
  logging.install(env);
  api = new RuntimeApi(env.AWS_LAMBDA_RUNTIME_API);
  process.on('uncaughtException', (err) => fatal('Uncaught Exception', err, 129));
  process.on('unhandledRejection', (reason) => fatal('Unhandled Promise Rejection', new errors.UnhandledPromiseRejection(reason), 128));
  const noGlobal = env.AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA;
  if (noGlobal !== '1' && noGlobal !== 'true') {
    globalThis.awslambda = { streamifyResponse: handler.streamifyResponse, HttpResponseStream };
  }
  const fn = await handler.load(env.LAMBDA_TASK_ROOT || process.cwd(), env._HANDLER || '');
  const invoker = new Invoker(api, fn, handler.describe(fn));
  let next = await api.next();
  for (;;) {
    currentId = next.headers['lambda-runtime-aws-request-id'];
    const answer = await invoker.run(next);
    const id = currentId;
    currentId = null;
    next = answer === null ? await api.next() : await api.answerThenNext(id, answer);
  }
}

main().catch((err) => fatal('Uncaught Exception', err, 129));
