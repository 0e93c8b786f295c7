// A FaaSO funko: an Express router. Routes here are served under /funko/<name>/ by the gateway.
const fs = require("fs");
const express = require("express");

const router = express.Router();

// The value of a secret added with `faaso secret add <funko> <name>`, if any.
function secret(name) {
  try {
    return fs.readFileSync(`/secrets/${name}`, "utf8").trim();
  } catch {
    return undefined;
  }
}

router.get("/", (req, res) => {
  res.json({ hello: req.query.name || "world", configured: secret("example") !== undefined });
});

module.exports = router;
