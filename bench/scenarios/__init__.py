"""One module per scenario (crud, single, stream), each with the targets its figures are judged against."""
