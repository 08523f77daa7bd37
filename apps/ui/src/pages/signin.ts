import { ApiError, signIn } from '../api';
import { errorBox, fill, h, showError } from '../dom';

/**
 * The token field. The token goes to `POST /ui/session` once, which answers an HttpOnly cookie:
 * the page never keeps the token (no localStorage), and the field is emptied at once.
 */
export async function signInPage(
  root: HTMLElement,
  message: string | null,
  signedIn: () => void,
): Promise<void> {
  const error = errorBox();
  const field = h('input', {
    id: 'token',
    name: 'token',
    type: 'password',
    autocomplete: 'off',
    required: true,
    'aria-describedby': 'token-help',
  }) as HTMLInputElement;
  const form = h(
    'form',
    {
      class: 'signin',
      onsubmit: (event: Event) => {
        event.preventDefault();
        const token = field.value.trim();
        field.value = '';
        showError(error, null);
        signIn(token).then(signedIn, (e: unknown) => {
          showError(error, e instanceof ApiError ? e.message : String(e));
          field.focus();
        });
      },
    },
    h('h1', {}, 'Sign in to Kiln'),
    message ? h('p', { class: 'notice', role: 'status' }, message) : null,
    h('label', { for: 'token' }, 'Token'),
    field,
    h(
      'p',
      { id: 'token-help', class: 'help' },
      'A project token (kiln_…) or the admin token. It is exchanged for a session cookie and not kept in this browser.',
    ),
    error,
    h('button', { type: 'submit' }, 'Sign in'),
  );
  fill(root, h('main', { id: 'main' }, form));
  field.focus();
}
