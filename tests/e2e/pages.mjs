// What the chat demo's page and the framework pages share, for their end-to-end tests: the same
// markup (#status, #online, #messages, the compose form), waited on the same way in every engine.

export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function statusIs(page, state) {
  return page.waitForFunction((s) => document.getElementById("status")?.dataset.state === s, state);
}

export function onlineIs(page, n) {
  return page.waitForFunction((n) => document.getElementById("online")?.dataset.count === String(n), n);
}

/** Waits for a `#messages li.<kind>` that contains `text`. */
export function entry(page, kind, text) {
  return page.waitForFunction(
    ({ kind, text }) =>
      [...document.querySelectorAll(`#messages li.${kind}`)].some((li) => li.textContent.includes(text)),
    { kind, text },
  );
}

/** Waits for the message list's entry for `text` said by `nick` (marked as the page's own if `mine`). */
export function chatLine(page, nick, text, { mine = false } = {}) {
  return page.waitForFunction(
    ({ nick, text, mine }) =>
      [...document.querySelectorAll("#messages li.msg")].some(
        (li) =>
          li.querySelector(".nick")?.textContent.includes(nick) &&
          li.querySelector(".text")?.textContent.includes(text) &&
          (!mine || li.classList.contains("mine")),
      ),
    { nick, text, mine },
  );
}

export async function say(page, text) {
  await page.waitForFunction(() => document.getElementById("send")?.disabled === false);
  await page.fill("#text", text);
  await page.click("#send");
}
