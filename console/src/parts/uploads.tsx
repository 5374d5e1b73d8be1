// Drag and drop (or choose) files to upload: one row per file with its progress, and the
// uploads a reload interrupted, which resume when the same file is dropped again.
import type { ComponentChildren } from 'preact';
import { useRef, useState } from 'preact/hooks';
import { bytes } from '../format.ts';
import { openUploads, uploadFile, type OpenUpload } from '../upload.ts';

interface Row {
  id: number;
  name: string;
  done: number;
  total: number;
  state: 'sending' | 'stored' | 'failed';
  resumed?: boolean;
  error?: string;
}

let nextId = 1;

function UploadRow({ row }: { row: Row }) {
  const pct = row.total ? Math.floor((row.done / row.total) * 100) : 0;
  return (
    <li class={`upload ${row.state}`} data-name={row.name}>
      <span class="name">{row.name}</span>
      <progress max={100} value={pct} aria-label={`${row.name} progress`} />
      <span class="pct">{row.state === 'failed' ? 'failed' : `${pct}%`}</span>
      <span class="meta">{row.error ?? `${bytes(row.done)} of ${bytes(row.total)}${row.resumed ? ' · resumed' : ''}`}</span>
    </li>
  );
}

function Interrupted({ uploads }: { uploads: OpenUpload[] }) {
  if (uploads.length === 0) return null;
  return (
    <p class="notice">
      Interrupted: {uploads.map((u) => `${u.name} (${bytes(u.size)})`).join(', ')}. Drop the same file{uploads.length > 1 ? 's' : ''} again
      to resume.
    </p>
  );
}

export function Uploads({ children, onStored }: { children: ComponentChildren; onStored: () => void }) {
  const [rows, setRows] = useState<Row[]>([]);
  const [over, setOver] = useState(false);
  const [interrupted, setInterrupted] = useState(openUploads);
  const input = useRef<HTMLInputElement>(null);
  const update = (id: number, change: Partial<Row>) => setRows((all) => all.map((r) => (r.id === id ? { ...r, ...change } : r)));

  const start = (files: FileList | null) => {
    for (const file of Array.from(files ?? [])) {
      const id = nextId++;
      setRows((all) => [...all, { id, name: file.name, done: 0, total: file.size, state: 'sending' }]);
      uploadFile(file, (p) => update(id, { done: p.bytesDone, resumed: p.resumed }), new AbortController().signal)
        .then(() => {
          update(id, { state: 'stored', done: file.size });
          onStored();
        })
        .catch((err: Error) => update(id, { state: 'failed', error: err.message }))
        .finally(() => setInterrupted(openUploads()));
    }
  };
  const drop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    start(e.dataTransfer?.files ?? null);
  };
  return (
    <section
      class={`drop-area${over ? ' over' : ''}`}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={(e) => e.target === e.currentTarget && setOver(false)}
      onDrop={drop}
    >
      <div class="drop-zone" data-testid="drop-zone">
        <span>Drop images anywhere here to upload them, or</span>
        <button onClick={() => input.current?.click()}>choose files</button>
        <input
          ref={input}
          type="file"
          multiple
          hidden
          onChange={(e) => {
            start(e.currentTarget.files);
            e.currentTarget.value = ''; // the same file may be chosen again
          }}
        />
      </div>
      <Interrupted uploads={interrupted.filter((u) => !rows.some((r) => r.name === u.name && r.state === 'sending'))} />
      {rows.length > 0 && (
        <ul class="uploads" aria-label="Uploads">
          {rows.map((row) => (
            <UploadRow key={row.id} row={row} />
          ))}
        </ul>
      )}
      {children}
    </section>
  );
}
