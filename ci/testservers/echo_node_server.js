// An HTTP/1.1 keep-alive echo server on Node's `http` module, for capture tests.
//
// Every request, whatever its method and path, is answered 200 with JSON describing what the
// server received: {method, path, query, body_len, body_sha256, headers: [[name, value], ...]}
// (headers as sent, in order). Node reads Content-Length and chunked bodies alike.
//
//   node echo_node_server.js --port 8080 [--host 127.0.0.1]
'use strict';

const crypto = require('crypto');
const http = require('http');

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const host = option('host', '127.0.0.1');
const port = Number(option('port', ''));
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node echo_node_server.js --port PORT [--host HOST]');
  process.exit(2);
}

const server = http.createServer((req, res) => {
  const hash = crypto.createHash('sha256');
  let bodyLen = 0;
  req.on('data', (chunk) => {
    bodyLen += chunk.length;
    hash.update(chunk);
  });
  req.on('end', () => {
    const q = req.url.indexOf('?');
    const headers = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      headers.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
    }
    const answer = Buffer.from(JSON.stringify({
      method: req.method,
      path: q >= 0 ? req.url.slice(0, q) : req.url,
      query: q >= 0 ? req.url.slice(q + 1) : '',
      body_len: bodyLen,
      body_sha256: hash.digest('hex'),
      headers,
    }));
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': answer.length });
    res.end(answer);
  });
});
server.keepAliveTimeout = 65000; // keep idle load-test connections open between bursts
server.headersTimeout = 66000;
server.listen({ host, port, backlog: 1024 }, () => console.log(`listening on ${host}:${port}`));

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
