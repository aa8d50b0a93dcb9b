import { field, h, replace } from "../dom.js";
import { readClaims } from "../format.js";

/**
 * Sign in by pasting a token. `message` says why the person is here again
 * (an expired token, a rejected one). The token is checked for shape and
 * expiry here; the edge verifies it on every call.
 */
export function signInView(
  main: HTMLElement,
  onToken: (token: string) => void,
  message?: string,
): void {
  const token = h("textarea", {
    name: "token",
    rows: "5",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    class: "mono",
    placeholder: "eyJhbGciOi…",
  });
  const error = h("div", { class: "form-error", role: "alert" });
  const form = h(
    "form",
    { class: "sign-in", "aria-label": "Sign in" },
    field(
      "Access token",
      token,
      "A bearer token (JWT) from your identity provider; on a dev gateway: npx mcp-gateway token --sub you --roles developer --ttl 8h. It is kept in this tab only.",
    ),
    error,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Sign in")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const value = token.value.trim();
    try {
      const claims = readClaims(value);
      if (claims.expiresAt !== undefined && claims.expiresAt <= Date.now()) {
        throw new Error(
          `This token expired at ${new Date(claims.expiresAt).toLocaleString()}. Mint or fetch a new one.`,
        );
      }
    } catch (err) {
      replace(error, (err as Error).message);
      token.setAttribute("aria-invalid", "true");
      token.focus();
      return;
    }
    onToken(value);
  });
  replace(
    main,
    h(
      "div",
      { class: "sign-in-card" },
      h("h1", { tabindex: "-1" }, "Sign in"),
      message
        ? h("div", { class: "problem", role: "alert", "data-kind": "signed-out" }, message)
        : null,
      h(
        "p",
        { class: "lede" },
        "The console calls the gateway with your token over gRPC-Web; every call is decided by the policy and audited.",
      ),
      form,
    ),
  );
  token.focus();
}
