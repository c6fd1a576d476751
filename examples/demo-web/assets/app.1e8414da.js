// berth demo SPA: plain JavaScript, no build step.
// Reads its settings from /env-config.js, which the berth proxy serves as
// `window._env_ = {...};` built from the service's environment.
(function () {
  "use strict";

  var env = window._env_ || {};
  var API = String(env.API_BASE_URL || "/api").replace(/\/+$/, "");
  var WS_URL = env.WS_URL ||
    (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";

  function $(id) { return document.getElementById(id); }

  function showError(message) {
    var box = $("error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function fetchJson(url, options) {
    return fetch(url, options).then(function (resp) {
      return resp.text().then(function (text) {
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
        if (!resp.ok) {
          var detail = body && body.error ? body.error : text || resp.statusText;
          throw new Error(resp.status + " " + detail);
        }
        return { body: body, replica: resp.headers.get("x-demo-replica") };
      });
    });
  }

  // ---- items ------------------------------------------------------------
  function renderItems(items) {
    var list = $("items");
    list.textContent = "";
    items.forEach(function (item) {
      var li = document.createElement("li");
      li.dataset.id = item.id;
      var text = document.createElement("span");
      text.className = "text";
      text.textContent = item.text;
      var by = document.createElement("span");
      by.className = "by";
      by.textContent = item.created_by === "migrate" ? "seed" : "replica " + item.created_by;
      li.appendChild(text);
      li.appendChild(by);
      list.appendChild(li);
    });
    $("count").textContent = String(items.length);
  }

  function loadItems() {
    return fetchJson(API + "/items").then(function (r) {
      renderItems(r.body || []);
      showError("");
    }).catch(function (e) { showError("Cannot list items: " + e.message); });
  }

  function addItem(event) {
    event.preventDefault();
    var input = $("new-item");
    var text = input.value.trim();
    if (!text) { input.focus(); return; }
    $("add").disabled = true;
    fetchJson(API + "/items", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text: text })
    }).then(function (r) {
      input.value = "";
      $("last-added").textContent = "added #" + r.body.id + " via replica " + r.body.created_by;
      return loadItems();
    }).catch(function (e) {
      showError("Cannot add item: " + e.message);
    }).then(function () {
      $("add").disabled = false;
      input.focus();
    });
  }

  // ---- which replica answers --------------------------------------------
  function whoami() {
    fetchJson(API + "/whoami").then(function (r) {
      var who = r.body;
      $("replica").textContent = who.service + " replica " + who.replica + " (pid " + who.pid + ")";
      $("replica").dataset.replica = who.replica;
    }).catch(function (e) {
      $("replica").textContent = "unreachable: " + e.message;
      delete $("replica").dataset.replica;
    });
  }

  // ---- WebSocket ----------------------------------------------------------
  var socket = null;
  var retryMs = 500;

  function log(direction, text) {
    var li = document.createElement("li");
    li.className = direction;
    li.textContent = (direction === "in" ? "\u2190 " : "\u2192 ") + text;
    var logList = $("ws-log");
    logList.appendChild(li);
    while (logList.children.length > 50) logList.removeChild(logList.firstChild);
  }

  function setStatus(status) {
    $("ws-status").textContent = status;
    $("ws-status").dataset.state = status;
    $("ws-send").disabled = status !== "open";
  }

  function connect() {
    setStatus("connecting");
    socket = new WebSocket(WS_URL);
    socket.onopen = function () { retryMs = 500; setStatus("open"); };
    socket.onmessage = function (event) {
      var text = typeof event.data === "string" ? event.data : "[binary " + event.data.size + " bytes]";
      try {
        var msg = JSON.parse(text);
        if (msg && msg.hello) { $("ws-hello").textContent = msg.hello; }
      } catch (e) { /* plain echo */ }
      log("in", text);
    };
    socket.onclose = function () {
      setStatus("closed");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  }

  function sendWs(event) {
    event.preventDefault();
    var input = $("ws-input");
    if (!socket || socket.readyState !== WebSocket.OPEN || !input.value) return;
    socket.send(input.value);
    log("out", input.value);
    input.value = "";
  }

  // ---- client-side routes (History API) -----------------------------------
  function render() {
    var about = location.pathname === "/about";
    $("view-home").hidden = about;
    $("view-about").hidden = !about;
    document.title = about ? "About - berth demo" : "berth demo";
    Array.prototype.forEach.call(document.querySelectorAll("nav a"), function (a) {
      a.classList.toggle("active", a.dataset.route === (about ? "/about" : "/"));
    });
  }

  function navigate(event) {
    var link = event.target.closest("a[data-route]");
    if (!link || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    var path = link.dataset.route;
    if (path !== location.pathname) history.pushState({}, "", path);
    render();
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("api-base").textContent = API;
    document.querySelector("nav").addEventListener("click", navigate);
    window.addEventListener("popstate", render);
    $("item-form").addEventListener("submit", addItem);
    $("ws-form").addEventListener("submit", sendWs);
    render();
    loadItems();
    whoami();
    setInterval(whoami, 2000);
    setInterval(loadItems, 5000);
    connect();
  });
})();
