/**
 * Progress on stderr (stdout carries only the result table): a redrawn bar on a
 * terminal, one line per finished step otherwise (CI logs, the smoke test).
 */
const WIDTH = 24;

export class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private label = '';
  private started = 0;
  private readonly runStarted = performance.now();

  /** Begins a step; `total` units (bytes, items, phases) are reported through update(). */
  step(label: string): void {
    this.label = label;
    this.started = performance.now();
    if (this.tty) this.draw(0, 1);
  }

  update(done: number, total: number): void {
    if (this.tty) this.draw(done, total);
  }

  /** Ends the current step with a short result text. */
  done(result = ''): void {
    const secs = ((performance.now() - this.started) / 1000).toFixed(1);
    const line = `[${this.elapsed()}] ${this.label} … ${result ? `${result} ` : ''}(${secs} s)`;
    process.stderr.write(this.tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
  }

  note(text: string): void {
    process.stderr.write(`${this.tty ? '\r\x1b[2K' : ''}[${this.elapsed()}] ${text}\n`);
  }

  private elapsed(): string {
    return `${((performance.now() - this.runStarted) / 1000).toFixed(0).padStart(4)} s`;
  }

  private draw(done: number, total: number): void {
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const filled = Math.round(frac * WIDTH);
    const bar = '#'.repeat(filled) + '.'.repeat(WIDTH - filled);
    process.stderr.write(`\r\x1b[2K[${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${this.label}`);
  }
}
