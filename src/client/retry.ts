// Retries with exponential backoff and full jitter for the calls that may safely be sent again,
// so a datanode restart or a reset socket costs a pause rather than a failed upload.
import { abortError, asClientError, isTransient, type TesseraClientError } from './errors.ts';

export interface RetryPolicy {
  /** Further attempts after the first one. */
  retries: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 5, baseDelayMs: 200, maxDelayMs: 5000 };

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Delay before attempt `attempt` (1-based retry number): full jitter keeps K parallel retries apart. */
export const backoffMs = (attempt: number, { baseDelayMs, maxDelayMs }: RetryPolicy) =>
  Math.round(Math.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1)));

export async function withRetry<T>(
  call: (attempt: number) => Promise<T>,
  {
    policy = DEFAULT_RETRY,
    signal,
    shouldRetry = isTransient,
    onRetry,
  }: {
    policy?: RetryPolicy;
    signal?: AbortSignal;
    shouldRetry?: (err: TesseraClientError) => boolean;
    onRetry?: (err: TesseraClientError, attempt: number, delayMs: number) => void;
  } = {},
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call(attempt);
    } catch (raw) {
      const err = asClientError(raw, signal);
      if (err.code === 'ABORTED' || attempt >= policy.retries || !shouldRetry(err)) throw err;
      const delay = backoffMs(attempt + 1, policy);
      onRetry?.(err, attempt + 1, delay);
      await sleep(delay, signal);
    }
  }
}
