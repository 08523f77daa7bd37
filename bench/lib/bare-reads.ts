/**
 * The `reads` benchmark's baseline (bench/reads.ts): a bare `node:http` server that answers the
 * same reads as Kiln's API with the same queries through `pg` (a pool of 20, as Kiln's), and
 * returns the rows as JSON, with no framework, authentication or presentation. Run as a process
 * of its own: `node bare-reads.js` with DATABASE_URL and PORT; prints `listening` when ready.
 *
 *   GET /task/<id>                    SELECT * FROM tasks WHERE id = $1
 *   GET /tasks/<project id>           one page of 30, newest first, with ?status=<status>
 *   GET /log/<task id>                the task's log chunks, in order, as text
 *   GET /code/<id>                    SELECT * FROM codes WHERE id = $1
 */
import { createServer, ServerResponse } from 'node:http';
import { Pool } from 'pg';

const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 20 });

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

async function answer(path: string, query: URLSearchParams, res: ServerResponse): Promise<void> {
  const [, kind, id] = path.split('/');
  if (kind === 'task') {
    const { rows } = await pool.query('SELECT * FROM tasks WHERE id = $1', [id]);
    return rows[0] ? json(res, 200, rows[0]) : json(res, 404, { msg: 'Task not found' });
  }
  if (kind === 'tasks') {
    const status = query.get('status');
    const { rows } = status
      ? await pool.query(
          `SELECT * FROM tasks WHERE project_id = $1 AND status = $2
            ORDER BY created_at DESC, id DESC LIMIT 30`,
          [id, status],
        )
      : await pool.query(
          `SELECT * FROM tasks WHERE project_id = $1 ORDER BY created_at DESC, id DESC LIMIT 30`,
          [id],
        );
    return json(res, 200, { tasks: rows });
  }
  if (kind === 'log') {
    const { rows } = await pool.query<{ data: Buffer | string }>(
      'SELECT data FROM task_log_chunks WHERE task_id = $1 ORDER BY seq',
      [id],
    );
    const text = rows.map((row) => row.data.toString()).join('');
    res.writeHead(200, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(text),
    });
    return void res.end(text);
  }
  if (kind === 'code') {
    const { rows } = await pool.query('SELECT * FROM codes WHERE id = $1', [id]);
    return rows[0] ? json(res, 200, rows[0]) : json(res, 404, { msg: 'Code not found' });
  }
  json(res, 404, { msg: 'Not found' });
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://bare');
  answer(url.pathname, url.searchParams, res).catch((error: Error) =>
    json(res, 500, { msg: error.message }),
  );
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));
