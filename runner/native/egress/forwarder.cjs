// The in-sandbox half of network "restricted" (docs/adr/0018-egress-proxy.md): started by
// sandbox-init in place of the task's command, it listens on 127.0.0.1:<port> inside the
// sandbox's own network namespace (no route out), forwards every connection to the runner's
// egress proxy through the unix socket bind-mounted at <socket>, then runs the command as its
// child and exits as the command did. It adds no way out: the socket leads only to the
// filtering proxy, which the task could reach directly as well.
//
//   node forwarder.cjs <socket> <port> -- <command> [args...]
"use strict";
const net = require("node:net");
const { spawn } = require("node:child_process");

const [socketPath, portText, separator, command, ...args] = process.argv.slice(2);
if (separator !== "--" || !command || !socketPath || !/^[0-9]{1,5}$/.test(portText ?? "")) {
  process.stderr.write(
    "egress-forwarder: usage: forwarder.cjs <socket> <port> -- <command> [args...]\n",
  );
  process.exit(126);
}

const server = net.createServer({ allowHalfOpen: true }, (client) => {
  const upstream = net.createConnection({ path: socketPath, allowHalfOpen: true });
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", close);
  upstream.on("error", close);
  client.on("close", () => upstream.end());
  upstream.on("close", () => client.end());
  client.pipe(upstream);
  upstream.pipe(client);
});
server.on("error", (err) => {
  process.stderr.write(
    `egress-forwarder: cannot listen on 127.0.0.1:${portText}: ${err.message}\n`,
  );
  process.exit(125);
});
server.listen(Number(portText), "127.0.0.1", () => {
  const child = spawn(command, args, { stdio: "inherit" });
  const forward = (signal) => () => child.kill(signal);
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"])
    process.on(signal, forward(signal));
  child.on("error", (err) => {
    process.stderr.write(`${command}: ${err.message}\n`);
    process.exit(err.code === "ENOENT" ? 127 : 126);
  });
  child.on("exit", (code, signal) => {
    server.close();
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
      return;
    }
    process.exit(code ?? 1);
  });
});
