// Progressive enhancement for the tollhouse console: everything works without it.
// - [data-copy="id"]: copies the text of element #id to the clipboard.
// - form[data-confirm]: asks before submitting (revoking a key cannot be undone).
'use strict';
document.addEventListener('click', (event) => {
  const button = event.target instanceof Element ? event.target.closest('[data-copy]') : null;
  if (button === null) return;
  const source = document.getElementById(button.getAttribute('data-copy'));
  if (source === null) return;
  const status = document.getElementById(`${button.getAttribute('data-copy')}-status`);
  navigator.clipboard.writeText(source.textContent.trim()).then(
    () => {
      if (status) status.textContent = 'Copied to the clipboard.';
    },
    () => {
      if (status) status.textContent = 'Copy failed: select the text and copy it yourself.';
    },
  );
});
document.addEventListener('submit', (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute('data-confirm')) return;
  if (!window.confirm(form.getAttribute('data-confirm'))) event.preventDefault();
});
// Copy buttons are useless without script, so they are hidden until it runs.
for (const button of document.querySelectorAll('[data-copy][hidden]')) button.hidden = false;
