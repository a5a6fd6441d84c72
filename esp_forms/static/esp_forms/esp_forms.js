/* esp_forms: progressive enhancement of the signup forms rendered by {% esp_form %}.
 *
 * Without this script the forms post and re-render like any HTML form. With it, each form:
 *  - fetches a fresh anti-spam token from its schema URL on load, and the page's one CSRF
 *    token (shared by all its forms), so pages can be fully cached: the tokens in the cached
 *    HTML are only the no-script fallback;
 *  - posts with fetch, shows the message and the field errors in place, moves focus to the
 *    first invalid field (or to the message), and disables the button while sending.
 * No build step, no dependencies. window.espForms.init(formElement) enhances a form added later.
 *
 * A form with data-esp-api (built by embed.js on another site) posts JSON to the JSON API
 * instead, without cookies: its inputs are named by the API's keys (email, fields.<name>,
 * consent...), so the server's per-field errors land next to the right input all the same.
 */
(function () {
  "use strict";
  if (window.espForms) { return; } // the script was included twice

  // A tab left open for long gets a new token when it is shown again. Long, so that a person
  // who comes back and submits at once does not hold a token younger than MIN_FILL_SECONDS.
  var REFRESH_AFTER_MS = 12 * 60 * 60 * 1000;
  // The script's own messages. The form template passes them in the page's language as
  // data-esp-text-<key> attributes; these English texts are the fallback.
  var TEXT = {
    network: "We could not reach the server. Please check your connection and try again.",
    expired: "This page has expired. Please reload it and try again.",
    failed: "Something went wrong on our side. Please try again in a moment.",
    sending: "Sending…"
  };

  // Every enhanced form, also those inside a shadow root that document queries cannot see.
  var forms = [];

  function isApi(form) {
    return form.hasAttribute("data-esp-api");
  }

  // Accept-Language with a plain tag is a CORS-safelisted header: no preflight for it.
  function withLanguage(form, headers) {
    var lang = form.getAttribute("data-esp-lang");
    if (lang) { headers["Accept-Language"] = lang; }
    return headers;
  }

  // The API's JSON body: top-level keys as named, "fields.<name>" grouped under "fields",
  // checkboxes as true/false.
  function jsonBody(form) {
    var body = {};
    // A CAPTCHA widget's answer input (cf-turnstile-response, h-captcha-response) is the API's
    // "captcha"; hCaptcha's second copy of it (g-recaptcha-response) is not sent at all.
    var captchaField = form.getAttribute("data-esp-captcha-field");
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.disabled || el.tagName === "BUTTON" || el.name === "csrfmiddlewaretoken") { return; }
      if (captchaField && el.name === captchaField) { body.captcha = el.value; return; }
      if (el.name === "g-recaptcha-response") { return; }
      var value = el.type === "checkbox" ? el.checked : el.value;
      if (el.name.indexOf("fields.") === 0) {
        body.fields = body.fields || {};
        body.fields[el.name.slice(7)] = value;
      } else {
        body[el.name] = value;
      }
    });
    return JSON.stringify(body);
  }

  function text(form, key) {
    return form.getAttribute("data-esp-text-" + key) || TEXT[key];
  }

  function byName(form, name) {
    var el = form.elements.namedItem(name);
    // A RadioNodeList when several inputs share the name: take the first.
    if (el && typeof el.length === "number" && !el.tagName) { el = el[0]; }
    return el || null;
  }

  function setHidden(form, name, value) {
    var el = byName(form, name);
    if (!el) {
      el = document.createElement("input");
      el.type = "hidden";
      el.name = name;
      form.appendChild(el);
    }
    el.value = value;
  }

  // One CSRF token per page load, shared by every form on it. On a cached page the visitor may
  // have no CSRF cookie yet, and each cookie-less schema fetch makes the server set a new one:
  // parallel fetches would each set a different cookie, and only the form whose answer came
  // last would hold a matching token. So exactly one fetch of the page asks for the token (and
  // the cookie); the others send csrf=0, and every form waits for and uses that one token.
  var csrfPromise = null;

  function fetchSchema(form, url) {
    return fetch(url, {
      headers: withLanguage(form, { "Accept": "application/json" }),
      credentials: isApi(form) ? "omit" : "same-origin",
      cache: "no-store"
    }).then(function (response) {
      return response.ok ? response.json() : null;
    });
  }

  function withoutCsrf(url) {
    return url + (url.indexOf("?") === -1 ? "?" : "&") + "csrf=0";
  }

  // Starts the page's CSRF fetch from this schema URL unless one is under way or done.
  function csrfFrom(form, url, request) {
    if (csrfPromise) { return null; }
    var fetched = request || fetchSchema(form, url);
    csrfPromise = fetched.then(function (data) {
      var token = (data && data.csrf_token) || "";
      if (!token) { csrfPromise = null; } // let the next form or submit try again
      return token;
    }, function () {
      csrfPromise = null;
      return "";
    });
    return fetched;
  }

  function ensureCsrf(form) {
    // A form posting JSON to the API (embed.js, another origin) sends no cookie: no CSRF.
    if (isApi(form)) { return Promise.resolve(); }
    var url = form.getAttribute("data-esp-schema-url");
    if (url) { csrfFrom(form, url); }
    if (!csrfPromise) { return Promise.resolve(); }
    return csrfPromise.then(function (token) {
      // Offline or blocked: keep the token the server rendered into the page.
      if (token) { setHidden(form, "csrfmiddlewaretoken", token); }
    });
  }

  function refreshToken(form) {
    var url = form.getAttribute("data-esp-schema-url");
    if (!url) { return Promise.resolve(); }
    var request = isApi(form) ? fetchSchema(form, withoutCsrf(url)) :
      csrfFrom(form, url, csrfPromise ? null : fetchSchema(form, url)) ||
      fetchSchema(form, withoutCsrf(url));
    var formToken = request.then(function (data) {
      if (!data || !data.form_token) { return; }
      setHidden(form, "form_token", data.form_token);
      form._espTokenAt = Date.now();
    }).catch(function () {
      // Offline or blocked: keep the token the server rendered into the page.
    });
    form._espReadyPromise = Promise.all([formToken, ensureCsrf(form)]);
    return form._espReadyPromise;
  }

  // A CAPTCHA answer is single-use: after the server refused one, the widget needs a new one.
  function resetCaptcha(form) {
    try {
      var turnstileBox = form.querySelector(".cf-turnstile");
      if (turnstileBox && window.turnstile) { window.turnstile.reset(turnstileBox); }
      var hcaptchaBox = form.querySelector(".h-captcha");
      if (hcaptchaBox && window.hcaptcha) {
        var frame = hcaptchaBox.querySelector("iframe[data-hcaptcha-widget-id]");
        window.hcaptcha.reset(frame ? frame.getAttribute("data-hcaptcha-widget-id") : undefined);
      }
    } catch (e) { /* the widget resets itself when its answer expires */ }
  }

  function messageBox(form) {
    return form.querySelector(".esp-form__message");
  }

  function showMessage(form, text, kind) {
    var box = messageBox(form);
    if (!box) { return null; }
    box.classList.remove("esp-form__message--success", "esp-form__message--error");
    if (kind) { box.classList.add("esp-form__message--" + kind); }
    box.textContent = text || "";
    return box;
  }

  function describedBy(input, id, add) {
    var ids = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
    ids = ids.filter(function (x) { return x !== id; });
    if (add) { ids.push(id); }
    if (ids.length) { input.setAttribute("aria-describedby", ids.join(" ")); }
    else { input.removeAttribute("aria-describedby"); }
  }

  function clearErrors(form) {
    Array.prototype.forEach.call(form.querySelectorAll(".esp-form__error"), function (el) {
      var input = el.id ? form.querySelector("[aria-describedby~='" + el.id + "']") : null;
      if (input) {
        describedBy(input, el.id, false);
        input.removeAttribute("aria-invalid");
      }
      el.parentNode.removeChild(el);
    });
    Array.prototype.forEach.call(form.querySelectorAll(".esp-form__field--invalid"), function (el) {
      el.classList.remove("esp-form__field--invalid");
    });
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (el) {
      el.removeAttribute("aria-invalid");
    });
  }

  // Shows errors next to their fields; returns the first invalid input, and the messages
  // that belong to no field (they go to the message region).
  function showErrors(form, errors) {
    var first = null;
    var loose = [];
    Object.keys(errors || {}).forEach(function (name) {
      var messages = [].concat(errors[name]).join(" ");
      var input = name === "non_field_errors" ? null : byName(form, name);
      if (!input || input.type === "hidden") { loose.push(messages); return; }
      var wrapper = input.closest(".esp-form__field") || input.parentNode;
      var error = document.createElement("p");
      error.className = "esp-form__error";
      error.id = (input.id || (form.getAttribute("id") + "-" + name)) + "_error";
      error.textContent = messages;
      wrapper.appendChild(error);
      wrapper.classList.add("esp-form__field--invalid");
      input.setAttribute("aria-invalid", "true");
      describedBy(input, error.id, true);
      if (!first) { first = input; }
    });
    return { first: first, loose: loose };
  }

  function setBusy(form, busy) {
    form.setAttribute("aria-busy", busy ? "true" : "false");
    Array.prototype.forEach.call(form.querySelectorAll("button[type='submit'], button:not([type]), input[type='submit']"), function (button) {
      button.disabled = busy;
      if (button.tagName === "BUTTON") {
        if (busy) { button._espLabel = button.textContent; button.textContent = text(form, "sending"); }
        else if (button._espLabel) { button.textContent = button._espLabel; }
      }
    });
  }

  function csrfToken(form) {
    var el = byName(form, "csrfmiddlewaretoken");
    return el ? el.value : "";
  }

  function onSubmit(event) {
    var form = event.currentTarget;
    event.preventDefault();
    if (form._espSending) { return; }
    form._espSending = true;
    clearErrors(form);
    showMessage(form, "", null);
    setBusy(form, true);

    // A quick visitor may submit before the page's token has arrived: wait for it.
    (form._espReadyPromise || Promise.resolve()).then(function () {
      return ensureCsrf(form);
    }).catch(function () {}).then(function () {
      // getAttribute and the prototype's reset: an input named "action" or "reset" would
      // shadow the form's own properties.
      return fetch(form.getAttribute("action") || window.location.href, isApi(form) ? {
        method: "POST",
        body: jsonBody(form),
        credentials: "omit",
        headers: withLanguage(form, { "Accept": "application/json", "Content-Type": "application/json" })
      } : {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: {
          "Accept": "application/json",
          "X-Requested-With": "XMLHttpRequest",
          "X-CSRFToken": csrfToken(form)
        }
      });
    }).then(function (response) {
      return response.json().then(function (data) {
        return { status: response.status, data: data };
      }, function () {
        return { status: response.status, data: null };
      });
    }).then(function (result) {
      var data = result.data;
      if (!data) {
        // Not our JSON: a CSRF failure (403) after the cookie expired, a proxy error page...
        var box = showMessage(form, text(form, result.status === 403 ? "expired" : "failed"), "error");
        if (box) { box.focus(); }
        return;
      }
      if (data.ok) {
        var body = form.querySelector(".esp-form__body");
        HTMLFormElement.prototype.reset.call(form);
        if (body) { body.hidden = true; }
        form.classList.add("esp-form--done");
        var done = showMessage(form, data.message, "success");
        if (done) { done.focus(); }
        return;
      }
      if (data.errors && data.errors.captcha) { resetCaptcha(form); }
      var shown = showErrors(form, data.errors);
      var message = data.message || text(form, "failed");
      if (shown.loose.length && shown.loose.indexOf(message) === -1) {
        message = message + " " + shown.loose.join(" ");
      }
      var region = showMessage(form, message, "error");
      if (shown.first) { shown.first.focus(); }
      else if (region) { region.focus(); }
    }).catch(function () {
      var box = showMessage(form, text(form, "network"), "error");
      if (box) { box.focus(); }
    }).then(function () {
      form._espSending = false;
      setBusy(form, false);
    });
  }

  function init(form) {
    if (!form || form._espReady) { return; }
    form._espReady = true;
    // The server's messages are shown in place and read out; the browser's own validation
    // bubbles would pre-empt them with different wording.
    form.noValidate = true;
    form.addEventListener("submit", onSubmit);
    forms.push(form);
    // A form built from a fresh schema answer already holds a fresh token.
    if (!form._espTokenAt) { refreshToken(form); }
  }

  function initAll() {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-esp-form]"), init);
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "visible") { return; }
    forms.forEach(function (form) {
      if (form._espTokenAt && Date.now() - form._espTokenAt > REFRESH_AFTER_MS) {
        refreshToken(form);
      }
    });
  });

  window.espForms = { init: init, refreshToken: refreshToken };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", initAll);
  } else {
    initAll();
  }
}());
