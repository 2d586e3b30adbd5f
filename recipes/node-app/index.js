const ms = require("ms");
console.log(`node-app: one day is ${ms("1d")} ms`);
