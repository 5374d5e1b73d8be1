// A datanode's status as a coloured chip.
export function Status({ status }: { status: string }) {
  return <span class={`status ${status.toLowerCase()}`}>{status}</span>;
}
