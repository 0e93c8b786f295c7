// FaaSO web UI: small progressive enhancements. Every page works without this file.
// - An element with data-refresh is reloaded from that URL every data-every milliseconds.
// - The logs page follows the logs of every instance live (pause, follow, tail).
"use strict";
document.documentElement.classList.add("js");

function refresh(section) {
  const every = Number(section.dataset.every || 5000);
  const tick = async () => {
    if (!document.hidden) {
      try {
        const response = await fetch(section.dataset.refresh, { credentials: "same-origin" });
        if (response.ok) {
          section.innerHTML = await response.text();
        } else if (response.status === 401 || response.status === 403) {
          location.reload();
          return;
        }
      } catch (_) {
        // The gateway is restarting or the network is down: try again at the next tick.
      }
    }
    setTimeout(tick, every);
  };
  setTimeout(tick, every);
}

function followLogs(list) {
  const status = document.getElementById("log-status");
  const follow = document.getElementById("follow");
  const pause = document.getElementById("pause");
  const maxLines = 5000;
  let paused = false;
  let held = [];
  let controller = null;

  const show = (entry) => {
    const item = document.createElement("li");
    const instance = document.createElement("span");
    instance.className = "inst";
    instance.textContent = entry.instance || "";
    item.append(instance, " ", entry.log);
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    list.append(item);
    while (list.children.length > maxLines) list.firstElementChild.remove();
    if (atBottom) list.scrollTop = list.scrollHeight;
  };
  const say = (text) => { status.textContent = text; };

  const start = async () => {
    controller = new AbortController();
    const url = `${list.dataset.stream}?follow=1&tail=${encodeURIComponent(list.dataset.tail)}`;
    try {
      const response = await fetch(url, { signal: controller.signal, credentials: "same-origin" });
      if (!response.ok) { say(`Cannot follow the logs (${response.status}).`); return; }
      list.replaceChildren();
      say("Following");
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const text = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (!text) continue;
          const entry = JSON.parse(text);
          if (entry.error) { say(`Stopped: ${entry.error}`); continue; }
          if (entry.ok) { say("The instances' logs ended."); continue; }
          if (paused) { held.push(entry); say(`Paused: ${held.length} new lines held`); }
          else show(entry);
        }
      }
    } catch (error) {
      if (error.name !== "AbortError") say(`The log stream broke: ${error.message}`);
    }
  };

  follow.addEventListener("change", () => {
    if (follow.checked) { start(); } else if (controller) { controller.abort(); say("Not following"); }
  });
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume" : "Pause";
    if (!paused) { held.forEach(show); held = []; say("Following"); }
    else say("Paused");
  });
  start();
}

document.querySelectorAll("[data-refresh]").forEach(refresh);
const log = document.getElementById("log");
if (log && log.dataset.stream) followLogs(log);
