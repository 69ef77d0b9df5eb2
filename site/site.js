// The browse site's behaviour: the registry host in pull commands, copy
// buttons, relative ages and the search box. Every page works without it.
(function () {
  "use strict";

  var NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
  var SHOWN = 100;
  // What a list shows of a description (indexjson.short_description): the
  // search JSON holds it whole, so that all of it can be searched.
  var BRIEF = 200;

  // A copied tree is served under another name: pull from where the page came
  // from, unless the site was generated with --base-url.
  function fillHost() {
    var host = document.documentElement.getAttribute("data-registry-host") ||
      window.location.host;
    if (!host) return;
    document.querySelectorAll("[data-host]").forEach(function (el) {
      el.textContent = host;
    });
  }

  function age(iso) {
    var then = Date.parse(iso);
    if (isNaN(then)) return null;
    var seconds = Math.max(0, (Date.now() - then) / 1000);
    var steps = [[60, "second"], [60, "minute"], [24, "hour"], [30.44, "day"],
      [12, "month"], [Infinity, "year"]];
    var value = seconds;
    for (var i = 0; i < steps.length; i++) {
      if (value < steps[i][0]) {
        var n = Math.floor(value);
        return n + " " + steps[i][1] + (n === 1 ? "" : "s") + " ago";
      }
      value /= steps[i][0];
    }
    return null;
  }

  function showAges(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var text = age(el.getAttribute("datetime"));
      if (text) {
        el.title = el.getAttribute("datetime").replace("T", " ").replace("Z", " UTC");
        el.textContent = text;
      }
    });
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain HTTP on another host has no clipboard API: copy through a selection.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var done = document.execCommand("copy");
      document.body.removeChild(area);
      if (done) resolve(); else reject(new Error("copy refused"));
    });
  }

  function setUpCopy() {
    var status = document.getElementById("copy-status");
    document.addEventListener("click", function (event) {
      var button = event.target.closest("button.copy");
      if (!button) return;
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) return;
      var text = source.textContent.replace(/\s+/g, " ").trim();
      copyText(text).then(function () {
        button.textContent = "Copied";
        if (status) status.textContent = "Copied: " + text;
      }, function () {
        button.textContent = "Select and copy";
      });
      window.setTimeout(function () { button.textContent = "Copy"; }, 2000);
    });
  }

  function brief(text) {
    var chars = Array.from(text);  // code points, as Python counts them
    if (chars.length <= BRIEF) return text;
    return chars.slice(0, BRIEF - 1).join("").trimEnd() + "\u2026";
  }

  function resultItem(entry, base) {
    var item = document.createElement("li");
    var link = document.createElement("a");
    link.className = "name";
    link.textContent = entry.name;
    if (NAME_RE.test(entry.name)) link.href = base + "r/" + entry.name + "/index.html";
    item.appendChild(link);
    var meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = entry.tags + (entry.tags === 1 ? " tag" : " tags");
    if (entry.updated) {
      meta.appendChild(document.createTextNode(" · updated "));
      var time = document.createElement("time");
      time.setAttribute("datetime", entry.updated);
      time.textContent = entry.updated.slice(0, 10);
      meta.appendChild(time);
    }
    item.appendChild(meta);
    if (entry.description) {
      var text = document.createElement("p");
      text.className = "description";
      text.textContent = brief(entry.description);
      item.appendChild(text);
    }
    return item;
  }

  function setUpSearch() {
    var form = document.querySelector("form.search");
    if (!form) return;
    var input = form.querySelector("input[type=search]");
    var results = document.getElementById("results");
    var listing = document.getElementById("listing");
    var status = document.getElementById("search-status");
    var base = form.getAttribute("data-base") || "";
    var loading = null;
    var timer = null;

    // The search JSON is fetched on first use, so the page itself stays small.
    function load() {
      if (!loading) {
        loading = fetch(form.getAttribute("data-index"), { credentials: "same-origin" })
          .then(function (response) {
            if (!response.ok) throw new Error("HTTP " + response.status);
            return response.json();
          })
          .then(function (doc) { return doc.repositories || []; });
        loading.catch(function () { loading = null; });
      }
      return loading;
    }

    function show(query) {
      var wanted = query.trim().toLowerCase();
      if (!wanted) {
        results.hidden = true;
        listing.hidden = false;
        status.textContent = "";
        return;
      }
      status.textContent = "Searching…";
      load().then(function (entries) {
        if (input.value.trim().toLowerCase() !== wanted) return;
        var found = entries.filter(function (e) {
          return e.name.toLowerCase().indexOf(wanted) >= 0 ||
            (e.description || "").toLowerCase().indexOf(wanted) >= 0;
        });
        results.replaceChildren.apply(results, found.slice(0, SHOWN).map(function (e) {
          return resultItem(e, base);
        }));
        showAges(results);
        results.hidden = false;
        listing.hidden = true;
        var count = found.length === 1 ? "1 repository matches" :
          found.length + " repositories match";
        status.textContent = count + " \u201c" + query.trim() + "\u201d" +
          (found.length > SHOWN ? " (showing the first " + SHOWN + ")" : "") + ".";
      }, function () {
        status.textContent = "Search is unavailable: the search index could not be loaded.";
      });
    }

    function remember(query) {
      var url = new URL(window.location.href);
      if (query.trim()) url.searchParams.set("q", query.trim());
      else url.searchParams.delete("q");
      window.history.replaceState(null, "", url);
    }

    input.addEventListener("focus", function () { load().catch(function () {}); });
    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        show(input.value);
        remember(input.value);
      }, 120);
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      show(input.value);
      remember(input.value);
    });
    var initial = new URLSearchParams(window.location.search).get("q");
    if (initial) {
      input.value = initial;
      show(initial);
    }
  }

  fillHost();
  showAges(document);
  setUpCopy();
  setUpSearch();
})();
