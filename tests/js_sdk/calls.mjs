// Runs Lambda calls with the AWS SDK for JavaScript v3 and prints what the
// SDK made of each answer, as JSON lines: the error's name (its code),
// message and HTTP status, or the call's output.
//
// stdin: {"endpoint": ..., "accessKeyId": ..., "secretAccessKey": ...,
//         "calls": [{"command": "GetFunctionCommand", "input": {...}}, ...]}
import * as lambda from "@aws-sdk/client-lambda";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const spec = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const client = new lambda.LambdaClient({
  endpoint: spec.endpoint,
  region: "us-east-1",
  credentials: { accessKeyId: spec.accessKeyId, secretAccessKey: spec.secretAccessKey },
  maxAttempts: 1,
});
for (const call of spec.calls) {
  const Command = lambda[call.command];
  try {
    const out = await client.send(new Command(call.input));
    delete out.$metadata;
    console.log(JSON.stringify({ ok: true, output: out }));
  } catch (err) {
    console.log(JSON.stringify({ ok: false, name: err.name, message: err.message, status: err.$metadata?.httpStatusCode ?? null }));
  }
}
