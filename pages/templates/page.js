(function () {
  "use strict";
  var form = document.getElementById("decide");
  var dialog = document.getElementById("confirm");
  if (!form || !dialog || typeof dialog.showModal !== "function") {
    return; // without the dialog the server asks for confirmation instead
  }
  var title = document.getElementById("title").textContent;
  var heading = document.getElementById("confirm-title");
  var quote = document.getElementById("confirm-comment");
  var ok = document.getElementById("confirm-ok");
  var cancel = document.getElementById("confirm-cancel");
  var comment = document.getElementById("comment");
  var status = document.getElementById("sending");
  var buttons = form.querySelectorAll("button[name=decision]");
  // The "Delegate to…" form, when there is one: out of use while a decision
  // is in flight.
  var delegation = document.querySelectorAll("#delegate button, #delegate input");
  var choice = "";
  var opener = null;
  var sending = false;
  var added = [];

  function label(c) {
    return c === "approve" ? "Approve" : "Reject";
  }

  function open(button) {
    choice = button.value;
    opener = button;
    heading.textContent = label(choice) + " \u201c" + title + "\u201d?";
    var text = comment ? comment.value.trim() : "";
    quote.textContent = text;
    quote.hidden = text === "";
    document.getElementById("confirm-with").hidden = text === "";
    ok.textContent = "Yes, " + label(choice).toLowerCase();
    ok.className = "btn " + choice;
    dialog.showModal();
    cancel.focus();
  }

  function field(name, value) {
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.appendChild(input);
    added.push(input);
  }

  function setBusy(busy) {
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].disabled = busy;
    }
    for (var j = 0; j < delegation.length; j++) {
      delegation[j].disabled = busy;
    }
    ok.disabled = busy;
    cancel.disabled = busy;
    if (comment) {
      comment.readOnly = busy;
    }
    status.textContent = busy ? "Sending your decision\u2026" : "";
    if (busy) {
      form.setAttribute("aria-busy", "true");
    } else {
      form.removeAttribute("aria-busy");
    }
  }

  for (var i = 0; i < buttons.length; i++) {
    buttons[i].addEventListener("click", function (e) {
      e.preventDefault();
      if (!sending && !dialog.open) {
        open(e.currentTarget);
      }
    });
  }

  // Only the confirmed path below submits; anything else would skip the dialog.
  form.addEventListener("submit", function (e) {
    e.preventDefault();
  });

  cancel.addEventListener("click", function () {
    dialog.close();
  });

  dialog.addEventListener("close", function () {
    if (!sending && opener) {
      opener.focus();
    }
  });

  ok.addEventListener("click", function (e) {
    // e.detail > 1: the second click of a double click on Approve or Reject
    // landed here; a confirmation needs a click of its own.
    if (sending || !choice || e.detail > 1) {
      return;
    }
    sending = true;
    field("decision", choice);
    field("confirmed", "1");
    setBusy(true);
    dialog.close();
    form.submit();
  });

  // Coming back to this page from the history: allow another attempt.
  window.addEventListener("pageshow", function (e) {
    if (e.persisted && sending) {
      sending = false;
      while (added.length) {
        form.removeChild(added.pop());
      }
      setBusy(false);
    }
  });

  var expires = document.getElementById("expires");
  var relative = document.getElementById("expires-in");
  function tick() {
    var left = Date.parse(expires.getAttribute("datetime")) - Date.now();
    var min = Math.round(left / 60000);
    var text;
    if (isNaN(left)) {
      text = "";
    } else if (left <= 0) {
      text = "(expired)";
    } else if (min < 1) {
      text = "(in less than a minute)";
    } else if (min < 90) {
      text = "(in " + min + (min === 1 ? " minute)" : " minutes)");
    } else if (min < 48 * 60) {
      text = "(in about " + Math.round(min / 60) + " hours)";
    } else {
      text = "(in about " + Math.round(min / 1440) + " days)";
    }
    relative.textContent = text;
  }
  if (expires && relative) {
    tick();
    window.setInterval(tick, 30000);
  }
})();
