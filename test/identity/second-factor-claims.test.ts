// The amr/acr a finished sign-in reports (second-factor.ts claimsFor), for every way in:
// password, upstream provider (`fed`, issue #18 item 3's path), TOTP, passkeys with and
// without user verification.
import { describe, expect, it } from 'vitest';
import { ACR_MFA, ACR_PASSWORD, claimsFor } from '../../src/identity/index.ts';

describe('claimsFor', () => {
  it.each([
    [['pwd'], ['pwd'], ACR_PASSWORD],
    [['fed'], ['fed'], ACR_PASSWORD],
    [['pwd', 'otp'], ['pwd', 'otp', 'mfa'], ACR_MFA],
    [['fed', 'otp'], ['fed', 'otp', 'mfa'], ACR_MFA],
    [['pwd', 'swk'], ['pwd', 'swk', 'mfa'], ACR_MFA],
    // A passkey alone: two factors only when it verified the user (PIN, biometrics).
    [['hwk', 'user'], ['hwk', 'user', 'mfa'], ACR_MFA],
    [['hwk'], ['hwk'], ACR_PASSWORD],
    // An otp with no first factor (never produced, but never mfa either).
    [['otp'], ['otp'], ACR_PASSWORD],
    // Repeats and a stale `mfa` from a session are not doubled.
    [['pwd', 'otp', 'otp', 'mfa'], ['pwd', 'otp', 'mfa'], ACR_MFA],
    [['pwd', 'mfa'], ['pwd'], ACR_PASSWORD],
  ] as const)('%j → amr %j, acr %s', (amr, expected, acr) => {
    expect(claimsFor([...amr])).toEqual({ amr: expected, acr });
  });
});
