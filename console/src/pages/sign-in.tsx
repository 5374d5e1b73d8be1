// Sign in with a token: checked with one query before it is kept.
import { useState } from 'preact/hooks';
import { gql } from '../api.ts';
import { SIGN_IN } from '../queries.ts';
import { saveToken } from '../session.ts';

export function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await gql(SIGN_IN, {}, token.trim());
      saveToken(token.trim());
      onSignedIn();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="sign-in" onSubmit={submit}>
      <h1>Tessera</h1>
      <p>
        Sign in with a token. <code>npm start</code> writes the admin token to <code>data/admin.token</code>;{' '}
        <code>tessera token create</code> makes others.
      </p>
      <label>
        Token
        <input type="password" name="token" autocomplete="off" required value={token} onInput={(e) => setToken(e.currentTarget.value)} />
      </label>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <button type="submit" disabled={busy || token.trim() === ''}>
        {busy ? 'Checking…' : 'Sign in'}
      </button>
    </form>
  );
}
