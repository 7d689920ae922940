// Node.js under the sandbox: the event loop, the libuv thread pool, worker
// threads, a child process, loopback HTTP, crypto, zlib and the interfaces.
const fs = require('fs'), os = require('os'), http = require('http'), zlib = require('zlib');
const crypto = require('crypto'), { execFileSync } = require('child_process');
const { Worker } = require('worker_threads');
async function main() {
  const out = {};
  fs.writeFileSync('/tmp/n.txt', 'hello');
  out.read = await fs.promises.readFile('/tmp/n.txt', 'utf8');
  out.worker = await new Promise((ok, bad) => {
    const w = new Worker('const { parentPort } = require("worker_threads"); parentPort.postMessage(6 * 7);', { eval: true });
    w.on('message', ok); w.on('error', bad);
  });
  out.child = execFileSync('/bin/sh', ['-c', 'echo child']).toString().trim();
  const server = http.createServer((req, res) => res.end('pong'));
  await new Promise(ok => server.listen(0, '127.0.0.1', ok));
  out.http = await new Promise((ok, bad) => http.get({ host: 'localhost', port: server.address().port }, res => {
    let body = ''; res.on('data', d => body += d); res.on('end', () => ok(body));
  }).on('error', bad));
  server.close();
  out.gzip = zlib.gunzipSync(zlib.gzipSync('zz')).toString();
  out.random = crypto.randomBytes(8).length;
  out.ifaces = Object.keys(os.networkInterfaces()).sort();
  out.cpus = os.cpus().length > 0;
  out.loadavg = os.loadavg().length;
  fs.writeSync(3, JSON.stringify(out) + '\n');
}
main().catch(e => { fs.writeSync(3, JSON.stringify({ error: String(e && e.stack || e) }) + '\n'); process.exit(1); });
