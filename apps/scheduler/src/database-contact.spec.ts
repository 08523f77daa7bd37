import { DatabaseContact } from './database-contact';

describe('DatabaseContact', () => {
  it('counts from the first contact after a loss, and is zero while out of contact', async () => {
    const contact = new DatabaseContact();
    expect(contact.unbrokenSeconds()).toBe(0);
    contact.reached();
    await new Promise((resolve) => setTimeout(resolve, 120));
    contact.reached();
    expect(contact.unbrokenSeconds()).toBeGreaterThanOrEqual(0.1);
    contact.lost();
    expect(contact.unbrokenSeconds()).toBe(0);
    contact.reached();
    expect(contact.unbrokenSeconds()).toBeLessThan(0.05);
  });
});
