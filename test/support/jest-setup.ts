// End-to-end tests wait for real containers; a task that never ends fails its test after this.
jest.setTimeout(120_000);
