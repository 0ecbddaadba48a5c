// Small helpers for tests that talk HTTP to the real app.

/** The parsed JSON body, typed loosely on purpose: tests assert its shape. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function json(response: Response): Promise<any> {
  return response.json();
}
