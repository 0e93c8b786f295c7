// FaaSO's entry point for an Express funko: mounts funko.js, adds /ping, listens on 3000,
// and drains on SIGTERM.
const express = require("express");
const funko = require("./funko");

const app = express();
app.get("/ping", (_req, res) => res.send("OK"));
app.use("/", funko);

const server = app.listen(Number(process.env.PORT || 3000), "0.0.0.0");
// Keep idle connections longer than the gateway's pool does (idle_timeout, 30s), so the
// gateway never sends a request on a connection this server is closing.
server.keepAliveTimeout = 75_000;
server.headersTimeout = 76_000;

process.on("SIGTERM", () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 8_000).unref();
});
