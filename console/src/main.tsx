// The console's shell: sign-in, then a header with the pages, routed by the URL's hash
// (#/ gallery, #/image/<name>, #/cluster) so the coordinator serves one page.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { closeSubscriptions } from './api.ts';
import { forgetToken, savedToken } from './session.ts';
import { SignIn } from './pages/sign-in.tsx';
import { Gallery } from './pages/gallery.tsx';
import { ImagePage } from './pages/image-page.tsx';
import { ClusterPage } from './pages/cluster-page.tsx';

type Route = { page: 'gallery' } | { page: 'image'; name: string } | { page: 'cluster' };

function routeOf(hash: string): Route {
  const image = /^#\/image\/(.+)$/.exec(hash);
  if (image) return { page: 'image', name: decodeURIComponent(image[1]) };
  if (hash === '#/cluster') return { page: 'cluster' };
  return { page: 'gallery' };
}

function useRoute(): Route {
  const [route, setRoute] = useState(() => routeOf(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(routeOf(location.hash));
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

function App() {
  const [signedIn, setSignedIn] = useState(() => savedToken() !== null);
  const route = useRoute();
  if (!signedIn) return <SignIn onSignedIn={() => setSignedIn(true)} />;
  const signOut = () => {
    forgetToken();
    closeSubscriptions();
    setSignedIn(false);
  };
  return (
    <>
      <header class="bar">
        <a class="brand" href="#/">
          Tessera
        </a>
        <nav>
          <a href="#/" aria-current={route.page !== 'cluster' ? 'page' : undefined}>
            Images
          </a>
          <a href="#/cluster" aria-current={route.page === 'cluster' ? 'page' : undefined}>
            Cluster
          </a>
        </nav>
        <button class="quiet" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main>
        {route.page === 'gallery' && <Gallery />}
        {route.page === 'image' && <ImagePage name={route.name} />}
        {route.page === 'cluster' && <ClusterPage />}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
