/**
 * Named points between the store's durable steps. A pass calls the barrier at
 * each one; production passes none. Crash tests pass one that kills the
 * process at a chosen point (kill -9, no cleanup runs), then check that the
 * store still holds the last good `current` and nothing partial is visible.
 */
export type Barrier = (point: string) => void | Promise<void>;

export const noBarrier: Barrier = () => {};
