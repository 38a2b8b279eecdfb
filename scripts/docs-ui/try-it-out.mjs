// Swagger UI's "Try it out", driven as a user would, for tests/docs_ui.rs (issue 17):
// open /docs, Authorize with the API key (the `api_key` scheme), open
// GET /conversations/{id}, Try it out, enter the id, Execute, and read the status the
// page shows. Debian's Chromium, headless, resolving no host name but 127.0.0.1: the page
// must work offline, and every request it makes must go to the proxy.
//
//   node try-it-out.mjs DOCS_URL API_KEY CONVERSATION_ID
//
// Prints one JSON line: {"status": "<shown status>", "sentKey": <the request carried the
// key>, "elsewhere": [<URLs of requests not to the proxy>], "body": "<shown body>"}.
// Exits non-zero when a step cannot be done (the message says which).
import { chromium } from "playwright-core";

const [docsUrl, apiKey, conversationId] = process.argv.slice(2);
if (!docsUrl || !apiKey || !conversationId) {
  console.error("usage: node try-it-out.mjs DOCS_URL API_KEY CONVERSATION_ID");
  process.exit(2);
}
const origin = new URL(docsUrl).origin;
const STEP_MS = 60_000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
  ],
});
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP_MS);
  const elsewhere = [];
  let sentKey = false;
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(origin) && !url.startsWith("data:")) elsewhere.push(url);
    if (url.startsWith(`${origin}/conversations/`)) {
      sentKey = request.headers()["x-api-key"] === apiKey;
    }
  });

  await page.goto(docsUrl);
  await page.locator(".information-container .title").waitFor();

  // Authorize: the api_key scheme's value, then the modal's Authorize and Close.
  await page.locator(".auth-wrapper button.authorize").click();
  const scheme = page.locator(".modal-ux .auth-container").filter({ hasText: "api_key" });
  await scheme.locator("input").fill(apiKey);
  await scheme.locator("button.modal-btn.authorize").click();
  await scheme.locator("button.modal-btn", { hasText: "Logout" }).waitFor();
  await page.locator(".modal-ux button.btn-done").first().click();

  // GET /conversations/{id}: open, Try it out, the id, Execute.
  const operation = page.locator("#operations-conversations-get_conversation");
  await operation.locator(".opblock-summary").first().click();
  await operation.locator("button.try-out__btn").click();
  await operation.locator('tr[data-param-name="id"] input').fill(conversationId);
  await operation.locator("button.execute").click();
  const status = operation.locator(".live-responses-table tr.response .response-col_status").first();
  await status.waitFor();
  const body = await operation
    .locator(".live-responses-table tr.response .response-col_description pre")
    .first()
    .innerText();
  console.log(
    JSON.stringify({
      status: (await status.innerText()).trim(),
      sentKey,
      elsewhere,
      body: body.slice(0, 100_000),
    }),
  );
} finally {
  await browser.close();
}
