// One image: the picture (a rendition), its metadata, its fragments with the datanodes holding
// each replica, and delete (asked twice, in the page).
import { useEffect, useState } from 'preact/hooks';
import type { Fragment } from '../../../src/client/types.ts';
import { gql } from '../api.ts';
import { bytes, dateTime } from '../format.ts';
import { DELETE_IMAGE, IMAGE } from '../queries.ts';
import { Status } from '../parts/status.tsx';
import { isPicture, renditionUrl, type ShownImage } from '../renditions.ts';

/** The picture's box: sharp on most screens, far lighter than a camera's original. */
const PICTURE_BOX = 1600;

interface Details extends ShownImage {
  sha256: string;
  createdAt: string;
  fragmentCount: number;
  fragmentSize: number;
  fragments: Fragment[];
}

function Metadata({ image }: { image: Details }) {
  const rows: [string, string][] = [
    ['Format', image.format ?? 'not an image'],
    ['Dimensions', image.width ? `${image.width} × ${image.height} px` : '–'],
    ['Size', `${bytes(image.size)} (${image.size.toLocaleString()} bytes)`],
    ['Content type', image.contentType],
    ['Stored', dateTime(image.createdAt)],
    ['Fragments', `${image.fragmentCount} of ${bytes(image.fragmentSize)}`],
    ['SHA-256', image.sha256],
  ];
  return (
    <dl class="metadata">
      {rows.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

function Fragments({ image }: { image: Details }) {
  return (
    <table class="fragments">
      <caption>Fragments and their replicas</caption>
      <thead>
        <tr>
          <th>#</th>
          <th>Size</th>
          <th>SHA-256</th>
          <th>Replicas</th>
        </tr>
      </thead>
      <tbody>
        {image.fragments.map((f) => (
          <tr key={f.index}>
            <td>{f.index}</td>
            <td>{bytes(f.size)}</td>
            <td>
              <code title={f.sha256}>{f.sha256.slice(0, 12)}…</code>
            </td>
            <td class="replicas">
              {f.replicas.map((r) => (
                <span key={r.id} class="replica" title={r.id}>
                  {r.url.replace(/^https?:\/\//, '')} <Status status={r.status} />
                </span>
              ))}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function DeleteButton({ name }: { name: string }) {
  const [asking, setAsking] = useState(false);
  const [error, setError] = useState<string>();
  const remove = async () => {
    try {
      await gql(DELETE_IMAGE, { name });
      location.hash = '#/';
    } catch (err) {
      setError((err as Error).message);
    }
  };
  if (!asking)
    return (
      <button class="danger" onClick={() => setAsking(true)}>
        Delete
      </button>
    );
  return (
    <span class="confirm">
      Delete {name} for good?{' '}
      <button class="danger" onClick={remove}>
        Yes, delete
      </button>{' '}
      <button onClick={() => setAsking(false)}>Keep it</button>
      {error && (
        <span class="error" role="alert">
          {error}
        </span>
      )}
    </span>
  );
}

export function ImagePage({ name }: { name: string }) {
  const [image, setImage] = useState<Details | null>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    setImage(undefined);
    gql<{ image: Details | null }>(IMAGE, { name })
      .then((d) => setImage(d.image))
      .catch((err: Error) => setError(err.message));
  }, [name]);
  if (error)
    return (
      <p class="error" role="alert">
        {error}
      </p>
    );
  if (image === undefined) return <p class="loading">Loading…</p>;
  if (image === null)
    return (
      <p class="empty">
        There is no image named “{name}”. <a href="#/">Back to the images</a>
      </p>
    );
  return (
    <article class="image-page">
      <div class="title">
        <a href="#/">← Images</a>
        <h1>{image.name}</h1>
        <a href={image.signedUrl} download={image.name.split('/').pop()}>
          Download original
        </a>
        <DeleteButton name={image.name} />
      </div>
      {isPicture(image) && (
        <figure>
          <img
            src={renditionUrl(image.signedUrl, PICTURE_BOX)}
            width={image.width ?? undefined}
            height={image.height ?? undefined}
            alt={image.name}
          />
        </figure>
      )}
      <Metadata image={image} />
      <Fragments image={image} />
    </article>
  );
}
