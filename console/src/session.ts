// The signed-in token. Kept in sessionStorage: it survives a reload (an upload resumes after
// one) but not the tab, so other tabs, and whoever uses a shared machine later, never read it.
const KEY = 'tessera.token';

export const savedToken = (): string | null => sessionStorage.getItem(KEY);
export const saveToken = (token: string) => sessionStorage.setItem(KEY, token);
export const forgetToken = () => sessionStorage.removeItem(KEY);
