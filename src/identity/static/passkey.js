// Passkeys (WebAuthn) for the sign-in pages and the console: a button
// `<button data-passkey="create|get" data-options="{…json…}" data-field="id">` inside a form
// runs navigator.credentials.create/get with the server's options (JSON, base64url binaries),
// writes the answer as JSON into the hidden input #id and submits the form. The server checks
// everything; this file only translates between JSON and the browser's ArrayBuffers.
'use strict';
(() => {
  const toBytes = (b64url) => {
    const b64 = b64url.replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
  };
  const toB64url = (buffer) => {
    let bin = '';
    for (const byte of new Uint8Array(buffer)) bin += String.fromCharCode(byte);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  };
  const descriptors = (list) => (list ?? []).map((d) => ({ ...d, id: toBytes(d.id) }));

  async function create(options) {
    const credential = await navigator.credentials.create({
      publicKey: {
        ...options,
        challenge: toBytes(options.challenge),
        user: { ...options.user, id: toBytes(options.user.id) },
        excludeCredentials: descriptors(options.excludeCredentials),
      },
    });
    const r = credential.response;
    return {
      id: credential.id,
      rawId: toB64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment ?? undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: {
        clientDataJSON: toB64url(r.clientDataJSON),
        attestationObject: toB64url(r.attestationObject),
        transports: typeof r.getTransports === 'function' ? r.getTransports() : [],
      },
    };
  }

  async function get(options) {
    const credential = await navigator.credentials.get({
      publicKey: {
        ...options,
        challenge: toBytes(options.challenge),
        allowCredentials: descriptors(options.allowCredentials),
      },
    });
    const r = credential.response;
    return {
      id: credential.id,
      rawId: toB64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment ?? undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: {
        clientDataJSON: toB64url(r.clientDataJSON),
        authenticatorData: toB64url(r.authenticatorData),
        signature: toB64url(r.signature),
        userHandle: r.userHandle ? toB64url(r.userHandle) : undefined,
      },
    };
  }

  document.addEventListener('click', (event) => {
    const button = event.target instanceof Element ? event.target.closest('[data-passkey]') : null;
    if (button === null) return;
    event.preventDefault();
    const status = document.getElementById(`${button.getAttribute('data-field')}-status`);
    const options = JSON.parse(button.getAttribute('data-options'));
    const run = button.getAttribute('data-passkey') === 'create' ? create : get;
    button.disabled = true;
    run(options).then(
      (answer) => {
        document.getElementById(button.getAttribute('data-field')).value = JSON.stringify(answer);
        button.form.submit();
      },
      (error) => {
        button.disabled = false;
        if (status) status.textContent = `The passkey did not answer (${error.name}). Try again.`;
      },
    );
  });
  // Passkey buttons need this script: they stay hidden without it.
  for (const button of document.querySelectorAll('[data-passkey][hidden]')) button.hidden = false;
})();
