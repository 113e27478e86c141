// A tiny HTTP app: answers every request with its greeting file.
const http = require("node:http");
const fs = require("node:fs");
const port = Number(process.env.PORT || 8080);
http
  .createServer((req, res) => {
    res.setHeader("content-type", "text/plain");
    res.end(fs.readFileSync(`${__dirname}/greeting.txt`, "utf8"));
  })
  .listen(port, () => console.log(`listening on ${port}`));
