/* esp_forms embed: one script tag puts a signup form on any page, Django or not.
 *
 *   <script src="https://your-site/static/esp_forms/embed.js" data-form="newsletter" async></script>
 *
 * The form appears where the tag is (or inside the element data-target names). It is built from
 * the JSON API's schema (GET <api>/forms/<form>/) with the markup of the bundled template, and
 * from then on driven by the bundled esp_forms.js (loaded from beside this file) in its JSON
 * mode: fresh token, no reload, the server's per-field errors in place, an aria-live message.
 * The page's origin must be in the form's "allowed origins" (CORS); when it is not, the
 * placeholder says the form is unavailable and the console says why.
 *
 * Options (attributes of the script tag):
 *   data-form      the form type (required)
 *   data-target    a CSS selector of the element to render into (default: before the tag)
 *   data-api       the API root (default: <origin of this script>/api/esp-forms/)
 *   data-lang      the language of labels and messages (default: the browser's)
 *   data-heading   h2 (default), h3 or h4
 *   data-shadow    "off" renders into the page itself instead of a shadow root
 *   data-unavailable-text  what visitors read when the form cannot be shown (no schema, so
 *                  no translation: the page supplies its own language)
 * The container fires "esp-forms:ready" or "esp-forms:error" (detail.reason, detail.message).
 */
(function () {
  "use strict";
  var DONE = "data-esp-embedded";
  var counter = 0;

  function el(tag, attrs, textContent) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (attrs[name] === false || attrs[name] === null || attrs[name] === undefined) { return; }
      node.setAttribute(name, attrs[name] === true ? "" : attrs[name]);
    });
    if (textContent) { node.textContent = textContent; }
    return node;
  }

  // The linebreaksbr filter: text with its line breaks kept, never HTML.
  function withBreaks(node, value) {
    String(value || "").split(/\r?\n/).forEach(function (line, i) {
      if (i) { node.appendChild(document.createElement("br")); }
      node.appendChild(document.createTextNode(line));
    });
    return node;
  }

  var STANDARD = { email: 1, phone: 1, first_name: 1, last_name: 1 };

  // The input of one schema field, as forms.build_field renders it; named by its API key.
  function input(field, id, texts) {
    var name = field.kind === "consent" ? "consent" : STANDARD[field.kind] ? field.kind : "fields." + field.name;
    var attrs = { id: id, name: name, required: field.required };
    if (field.help_text) { attrs["aria-describedby"] = id + "_helptext"; }
    var node;
    switch (field.kind) {
      case "email":
        node = el("input", Object.assign(attrs, { type: "email", autocomplete: "email", inputmode: "email",
          spellcheck: "false", autocapitalize: "none", maxlength: "254" }));
        break;
      case "phone":
        node = el("input", Object.assign(attrs, { type: "tel", autocomplete: "tel", inputmode: "tel" }));
        break;
      case "first_name":
      case "last_name":
        node = el("input", Object.assign(attrs, { type: "text", autocapitalize: "words",
          autocomplete: field.kind === "first_name" ? "given-name" : "family-name" }));
        break;
      case "choice":
        node = el("select", attrs);
        node.appendChild(el("option", { value: "" }, field.required ? texts.choose : texts.none));
        (field.choices || []).forEach(function (choice) {
          node.appendChild(el("option", { value: choice.value }, choice.label));
        });
        break;
      case "checkbox":
      case "consent":
        node = el("input", Object.assign(attrs, { type: "checkbox" }));
        break;
      case "date":
        node = el("input", Object.assign(attrs, { type: "date" }));
        break;
      default:
        node = el("input", Object.assign(attrs, { type: "text" }));
    }
    node.setAttribute("part", "input");
    return node;
  }

  // One field block, as esp_forms/includes/field.html renders it.
  function fieldBlock(field, uid, texts) {
    var id = uid + "-" + (STANDARD[field.kind] ? field.kind : field.name);
    var block = el("div", { "class": "esp-form__field esp-form__field--" + field.kind, "data-esp-field": field.name });
    var label = el("label", { "class": "esp-form__label", "for": id });
    withBreaks(label, field.label);
    if (field.required) {
      label.appendChild(el("span", { "class": "esp-form__required", "aria-hidden": "true" }, "\u00a0*"));
    }
    var control = input(field, id, texts);
    if (field.kind === "checkbox" || field.kind === "consent") {
      var check = el("div", { "class": "esp-form__check" });
      check.appendChild(control);
      check.appendChild(label);
      block.appendChild(check);
    } else {
      block.appendChild(label);
      block.appendChild(control);
    }
    if (field.help_text) {
      block.appendChild(el("p", { "class": "esp-form__help", id: id + "_helptext" }, field.help_text));
    }
    return block;
  }

  // The form, as esp_forms/form.html renders it.
  function buildForm(schema, options) {
    var texts = schema.texts || {};
    var uid = "esp-embed-" + schema.form_type + (++counter > 1 ? "-" + counter : "");
    var form = el("form", {
      "class": "esp-form", id: uid, method: "post", action: schema.submit_url, part: "form",
      "data-esp-form": schema.form_type, "data-esp-schema-url": options.schemaUrl,
      "data-esp-api": "json", "data-esp-lang": options.lang,
      "data-esp-text-network": texts.network, "data-esp-text-failed": texts.failed,
      "data-esp-text-sending": texts.sending, "aria-labelledby": uid + "-title"
    });
    form.appendChild(el(options.heading, { "class": "esp-form__title", id: uid + "-title" }, schema.title));
    if (schema.description) {
      form.appendChild(withBreaks(el("p", { "class": "esp-form__description" }), schema.description));
    }
    form.appendChild(el("div", { "class": "esp-form__message", id: uid + "-message", role: "status",
      "aria-live": "polite", tabindex: "-1", part: "message" }));
    var body = el("div", { "class": "esp-form__body" });
    var fields = schema.fields.slice();
    if (schema.consent_text) {
      fields.push({ name: "consent", label: schema.consent_text, kind: "consent", required: true });
    }
    if (fields.some(function (f) { return f.required; })) {
      body.appendChild(el("p", { "class": "esp-form__legend", "aria-hidden": "true" }, texts.required));
    }
    fields.forEach(function (field) {
      body.appendChild(fieldBlock(field, uid, texts));
    });
    body.appendChild(el("input", { type: "hidden", name: "form_token", value: schema.form_token }));
    // The honeypot, off-screen and out of reach like the template's (inline style included).
    var trap = el("div", { "class": "esp-form__hp", "aria-hidden": "true",
      style: "position:absolute!important;left:-10000px!important;top:auto!important;width:1px!important;height:1px!important;overflow:hidden!important;" });
    trap.appendChild(el("label", { "for": uid + "-hp" }, texts.honeypot));
    trap.appendChild(el("input", { type: "text", id: uid + "-hp", name: schema.honeypot_field, tabindex: "-1", autocomplete: "off" }));
    body.appendChild(trap);
    if (schema.captcha) {
      // The widget's answer input is sent to the API as "captcha" (see esp_forms.js jsonBody).
      form.setAttribute("data-esp-captcha-field", schema.captcha.response_field);
      body.appendChild(el("div", { "class": "esp-form__captcha " + schema.captcha.widget_class,
        "data-sitekey": schema.captcha.site_key }));
    }
    var actions = el("div", { "class": "esp-form__actions" });
    actions.appendChild(el("button", { type: "submit", "class": "esp-form__submit", part: "submit" }, schema.submit_label));
    body.appendChild(actions);
    form.appendChild(body);
    form._espTokenAt = Date.now();
    return form;
  }

  function loadOnce(url, test) {
    if (test()) { return Promise.resolve(); }
    var existing = document.querySelector("script[data-esp-core]");
    return new Promise(function (resolve, reject) {
      var script = existing || el("script", { src: url, "data-esp-core": "" });
      script.addEventListener("load", function () { resolve(); });
      script.addEventListener("error", function () { reject(new Error("Could not load " + url)); });
      if (!existing) { document.head.appendChild(script); }
    });
  }

  // A CAPTCHA provider's script finds its placeholders in the document when it loads, which
  // misses one in a shadow root or added later: load it in explicit mode and render ours.
  var captchaScripts = {};

  function renderCaptcha(form, captcha) {
    var box = form.querySelector(".esp-form__captcha");
    if (!captcha || !box) { return Promise.resolve(); }
    var api = captcha.provider === "hcaptcha" ? "hcaptcha" : "turnstile";
    var url = captcha.script_url + (captcha.script_url.indexOf("?") === -1 ? "?" : "&") + "render=explicit";
    if (!captchaScripts[url]) {
      captchaScripts[url] = new Promise(function (resolve, reject) {
        var script = el("script", { src: url, async: "" });
        script.addEventListener("load", function () { resolve(); });
        script.addEventListener("error", function () { reject(new Error("Could not load " + url)); });
        document.head.appendChild(script);
      });
    }
    return captchaScripts[url].then(function () {
      window[api].render(box, { sitekey: captcha.site_key });
    });
  }

  function stylesheet(url) {
    var link = el("link", { rel: "stylesheet", href: url });
    var loaded = new Promise(function (resolve) {
      link.addEventListener("load", resolve);
      link.addEventListener("error", resolve); // unstyled beats missing
    });
    return { link: link, loaded: loaded };
  }

  // Why the schema could not be read. A CORS refusal and a network failure look alike to
  // fetch; a no-cors request reaches a server that is up, so it tells them apart.
  function diagnose(schemaUrl, error) {
    if (error && error.status) {
      return Promise.resolve({ reason: "http", message: "the API answered " + error.status + ": " + (error.message || "") });
    }
    return fetch(schemaUrl, { mode: "no-cors", credentials: "omit", cache: "no-store" }).then(function () {
      return { reason: "origin", message: "the API at " + schemaUrl + " did not allow this page's origin (" +
        window.location.origin + "). Add " + window.location.origin + " to the form's allowed origins in the " +
        "admin, and check that the form exists and is active." };
    }, function () {
      return { reason: "network", message: "could not reach " + schemaUrl + "." };
    });
  }

  function render(script) {
    script.setAttribute(DONE, "");
    var formType = script.getAttribute("data-form");
    var src = new URL(script.src, window.location.href);
    var api = script.getAttribute("data-api") || src.origin + "/api/esp-forms/";
    if (api.slice(-1) !== "/") { api += "/"; }
    var schemaUrl = new URL("forms/" + encodeURIComponent(formType || "") + "/", api).href;
    var heading = /^h[234]$/.test(script.getAttribute("data-heading") || "") ? script.getAttribute("data-heading") : "h2";
    var lang = script.getAttribute("data-lang") || null;

    var target = script.getAttribute("data-target");
    var host = target ? document.querySelector(target) : null;
    if (!host) {
      host = el("div");
      if (script.parentNode && script.parentNode !== document.head) {
        script.parentNode.insertBefore(host, script);
      } else {
        document.body.appendChild(host);
      }
    }
    host.classList.add("esp-embed");
    host.setAttribute("data-esp-embed", formType || "");
    var shadow = script.getAttribute("data-shadow") !== "off" && host.attachShadow;
    var root = shadow ? host.attachShadow({ mode: "open" }) : host;
    var css = stylesheet(new URL("esp_forms.css", src).href);
    if (shadow) {
      root.appendChild(el("style", {}, ":host{display:block}"));
      root.appendChild(css.link);
    } else if (!document.querySelector("link[data-esp-css]")) {
      css.link.setAttribute("data-esp-css", "");
      document.head.appendChild(css.link);
    }

    function fail(problem) {
      var box = el("p", { "class": "esp-embed__unavailable", role: "alert" },
        script.getAttribute("data-unavailable-text") || "This signup form is not available here.");
      root.appendChild(box);
      host.setAttribute("data-esp-error", problem.reason);
      if (window.console) { console.error("esp_forms embed (" + formType + "): " + problem.message); }
      host.dispatchEvent(new CustomEvent("esp-forms:error", { detail: problem, bubbles: true }));
    }

    if (!formType) {
      fail({ reason: "config", message: "the script tag has no data-form attribute." });
      return;
    }
    var headers = { "Accept": "application/json" };
    if (lang) { headers["Accept-Language"] = lang; }
    fetch(schemaUrl, { headers: headers, credentials: "omit", cache: "no-store" }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) { throw { status: response.status, message: data && data.message }; }
        return data;
      }, function () { throw { status: response.status }; });
    }).then(function (schema) {
      var form = buildForm(schema, { schemaUrl: schemaUrl, heading: heading, lang: lang });
      var core = loadOnce(new URL("esp_forms.js", src).href, function () { return !!window.espForms; });
      return Promise.all([core, css.loaded]).then(function () {
        root.appendChild(form);
        window.espForms.init(form);
        return renderCaptcha(form, schema.captcha);
      }).then(function () {
        host.dispatchEvent(new CustomEvent("esp-forms:ready", { detail: { form: form }, bubbles: true }));
      }, function (error) {
        fail({ reason: "script", message: error.message });
      });
    }, function (error) {
      diagnose(schemaUrl, error).then(fail);
    });
  }

  var current = document.currentScript;
  if (current && current.getAttribute("data-form") !== null && !current.hasAttribute(DONE)) {
    render(current);
  }
  // Tags whose script ran without currentScript (or were added before this copy ran).
  Array.prototype.forEach.call(document.querySelectorAll("script[data-form][src*='embed']:not([" + DONE + "])"), render);
}());
