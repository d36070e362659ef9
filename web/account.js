// Sign in and create an account (POST /v1/users, then POST /v1/sessions).

import { ApiError, post } from "./api.js";
import { h, notice } from "./dom.js";
import { explain } from "./order.js";
import * as session from "./session.js";

export function accountPage(main, mode) {
  const signingUp = mode === "signup";
  const messages = h("div.messages", { "aria-live": "polite" });
  const username = h("input", {
    id: "username",
    name: "username",
    autocomplete: "username",
    required: true,
    minlength: 3,
    maxlength: 32,
    pattern: "[a-z0-9_]{3,32}",
    autocapitalize: "none",
    spellcheck: "false",
    "aria-describedby": signingUp ? "username-help" : null,
  });
  const password = h("input", {
    id: "password",
    name: "password",
    type: "password",
    autocomplete: signingUp ? "new-password" : "current-password",
    required: true,
    minlength: signingUp ? 8 : null,
    "aria-describedby": signingUp ? "password-help" : null,
  });
  const submit = h("button", { type: "submit" }, signingUp ? "Create account" : "Sign in");
  const form = h(
    "form.account",
    { "aria-label": signingUp ? "Create an account" : "Sign in" },
    h("label", { for: "username" }, "Username"),
    username,
    signingUp ? h("p.help", { id: "username-help" }, "3 to 32 characters: lowercase letters, digits, _.") : null,
    h("label", { for: "password" }, "Password"),
    password,
    signingUp ? h("p.help", { id: "password-help" }, "At least 8 characters.") : null,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    messages.replaceChildren(notice("info", signingUp ? "Creating your account…" : "Signing in…"));
    try {
      const credentials = { username: username.value, password: password.value };
      if (signingUp) await post("/v1/users", credentials);
      const started = await post("/v1/sessions", credentials);
      session.save(username.value, started.token, started.expires_at);
      const back = sessionStorage.getItem("boxoffice.return");
      sessionStorage.removeItem("boxoffice.return");
      location.hash = back || "#/";
    } catch (error) {
      messages.replaceChildren(notice("error", accountError(error)));
      submit.disabled = false;
    }
  });
  main.replaceChildren(
    h("h1", {}, signingUp ? "Create an account" : "Sign in"),
    messages,
    form,
    signingUp
      ? h("p", {}, "Have an account? ", h("a", { href: "#/signin" }, "Sign in"))
      : h("p", {}, "New here? ", h("a", { href: "#/signup" }, "Create an account")),
  );
  username.focus();
}

function accountError(error) {
  if (!(error instanceof ApiError)) return explain(error);
  if (error.code === "username_taken") return "That username is taken; pick another.";
  if (error.code === "bad_credentials") return "Wrong username or password.";
  if (error.status === 422) return "Check the username (3 to 32 of a-z, 0-9, _) and the password (8 or more characters).";
  return explain(error);
}
