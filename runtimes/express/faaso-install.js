// FaaSO's dependency step for an Express funko: `npm install` of package.json's dependencies
// (and Express, which the server needs), unless the base image already provides every one of
// them, through NODE_PATH for example: then no npm registry is needed.
const { execSync } = require("child_process");

const declared = Object.keys(require("./package.json").dependencies || {});
const wanted = declared.includes("express") ? declared : [...declared, "express"];
const resolvable = (name) => {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
};
const npm = (args) => execSync(`npm ${args} --no-audit --no-fund`, { stdio: "inherit" });

if (wanted.every(resolvable)) {
  console.log(`dependencies provided by the base image: ${wanted.join(", ")}`);
} else {
  npm("install --omit=dev");
  if (!resolvable("express")) npm("install --no-save express@4");
}
