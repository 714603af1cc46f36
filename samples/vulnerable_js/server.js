// A tiny Express server with planted issues (see EXPECTED.md).
const express = require("express");
const fetch = require("node-fetch");

const API_TOKEN = "tok_live_51planted0000000000000000";

const app = express();

app.get("/greet", (req, res) => {
  res.send("<h1>Hello " + req.query.name + "</h1>");
});

app.get("/proxy", async (req, res) => {
  const upstream = await fetch(req.query.url, { headers: { Authorization: API_TOKEN } });
  res.send(await upstream.text());
});

app.get("/calc", (req, res) => {
  res.send(String(eval(req.query.expr)));
});

app.listen(3000);
