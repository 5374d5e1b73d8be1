// The gallery: thumbnails (renditions) of the images, a page at a time as the end scrolls into
// view, filtered by a name prefix, in three sizes; uploads dropped anywhere on it.
import { useEffect, useRef, useState } from 'preact/hooks';
import type { PageInfo } from '../../../src/client/types.ts';
import { gql } from '../api.ts';
import { bytes } from '../format.ts';
import { IMAGES } from '../queries.ts';
import { isPicture, renditionUrl, type ShownImage } from '../renditions.ts';
import { Uploads } from '../parts/uploads.tsx';

type Thumb = ShownImage;
interface Page {
  totalCount: number;
  pageInfo: PageInfo;
  edges: { node: Thumb }[];
}

const SIZES = { S: 160, M: 260, L: 400 } as const;
type Size = keyof typeof SIZES;
const PAGE = 40;

/** The listing for a prefix; `more` loads the next page. */
function useListing(prefix: string, generation: number) {
  const [state, setState] = useState<{ items: Thumb[]; total?: number; cursor: string | null; more: boolean; error?: string }>({
    items: [],
    cursor: null,
    more: true,
  });
  const loading = useRef(false);
  const key = `${prefix}\u0000${generation}`;
  const current = useRef(key);
  current.current = key;
  const load = async (from: typeof state) => {
    if (loading.current || !from.more) return;
    loading.current = true;
    try {
      const { images } = await gql<{ images: Page }>(IMAGES, { first: PAGE, after: from.cursor, prefix: prefix || undefined });
      if (current.current !== key) return;
      setState({
        items: [...from.items, ...images.edges.map((e) => e.node)],
        total: images.totalCount,
        cursor: images.pageInfo.endCursor,
        more: images.pageInfo.hasNextPage,
      });
    } catch (err) {
      if (current.current === key) setState({ ...from, more: false, error: (err as Error).message });
    } finally {
      loading.current = false;
    }
  };
  useEffect(() => {
    loading.current = false;
    const fresh = { items: [], cursor: null, more: true };
    setState(fresh);
    void load(fresh);
  }, [key]);
  return { ...state, more: () => load(state) };
}

function useDebounced<T>(value: T, ms: number): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value]);
  return settled;
}

/**
 * Calls `onVisible` when the returned ref's element is in view: observed anew after each page
 * (`shown` changes), so a page too short to scroll still loads the next one.
 */
function useSentinel(onVisible: () => void, shown: number) {
  const ref = useRef<HTMLDivElement>(null);
  const latest = useRef(onVisible);
  latest.current = onVisible;
  useEffect(() => {
    const observer = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && latest.current(), {
      rootMargin: '600px',
    });
    if (ref.current) observer.observe(ref.current);
    return () => observer.disconnect();
  }, [shown]);
  return ref;
}

/** One image: its thumbnail (for a picture) or its type (for another file), name and size. */
function Tile({ image, box }: { image: Thumb; box: number }) {
  // Device pixels: a 2x screen gets a sharp thumbnail.
  const pixels = Math.round(box * Math.min(devicePixelRatio || 1, 2));
  return (
    <li>
      <a href={`#/image/${encodeURIComponent(image.name)}`} title={image.name}>
        {isPicture(image) ? (
          <img src={renditionUrl(image.signedUrl, pixels)} alt={image.name} loading="lazy" decoding="async" />
        ) : (
          <span class="file">{image.contentType}</span>
        )}
        <span class="name">{image.name}</span>
        <span class="meta">
          {image.width ? `${image.width}×${image.height} · ` : ''}
          {bytes(image.size)}
        </span>
      </a>
    </li>
  );
}

export function Gallery() {
  const [typed, setTyped] = useState('');
  const [size, setSize] = useState<Size>(() => (localStorage.getItem('tessera.thumbSize') as Size) || 'M');
  const [generation, setGeneration] = useState(0);
  const prefix = useDebounced(typed.trim(), 250);
  const listing = useListing(prefix, generation);
  const sentinel = useSentinel(() => void listing.more(), listing.items.length);
  const pickSize = (s: Size) => {
    localStorage.setItem('tessera.thumbSize', s);
    setSize(s);
  };
  return (
    <Uploads onStored={() => setGeneration((g) => g + 1)}>
      <div class="toolbar">
        <input
          type="search"
          placeholder="Names starting with…"
          aria-label="Name prefix"
          value={typed}
          onInput={(e) => setTyped(e.currentTarget.value)}
        />
        <span class="count">{listing.total === undefined ? '' : `${listing.total} image${listing.total === 1 ? '' : 's'}`}</span>
        <div class="segmented" role="group" aria-label="Thumbnail size">
          {(Object.keys(SIZES) as Size[]).map((s) => (
            <button key={s} aria-pressed={s === size} onClick={() => pickSize(s)}>
              {s}
            </button>
          ))}
        </div>
      </div>
      {listing.error && (
        <p class="error" role="alert">
          {listing.error}
        </p>
      )}
      <ul class="grid" style={{ '--thumb': `${SIZES[size]}px` }}>
        {listing.items.map((image) => (
          <Tile key={image.name} image={image} box={SIZES[size]} />
        ))}
      </ul>
      {listing.total === 0 && <p class="empty">{prefix ? `No image name starts with “${prefix}”.` : 'No images yet: drop some here.'}</p>}
      <div ref={sentinel} class="sentinel" />
    </Uploads>
  );
}
